package parser

import (
	"math"
	"testing"
)

// parseBucket's constants must stay in step with ParseTimeBuckets, which
// the metrics collector labels the counts with.
func TestParseBucketMatchesBounds(t *testing.T) {
	bounds := ParseTimeBuckets()
	if len(bounds) != nParseBuckets {
		t.Fatalf("%d bounds, nParseBuckets = %d", len(bounds), nParseBuckets)
	}
	for i, b := range bounds {
		ns := int64(math.Round(b * 1e9))
		if got := parseBucket(ns); got != i {
			t.Errorf("%d ns (bound %d) goes to bucket %d", ns, i, got)
		}
		if got := parseBucket(ns + 1); got != i+1 {
			t.Errorf("%d ns (just above bound %d) goes to bucket %d, want %d", ns+1, i, got, i+1)
		}
	}
	if got := parseBucket(0); got != 0 {
		t.Errorf("0 ns goes to bucket %d", got)
	}
}
