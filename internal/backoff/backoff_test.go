package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 5 * time.Second}
	within := func(d, want time.Duration) bool { return d >= want-want/5 && d <= want+want/5 }
	for i, want := range []time.Duration{1, 2, 4, 5, 5} {
		if d := b.Next(); !within(d, want*time.Second) {
			t.Errorf("attempt %d: %s, want %s ±20%%", i, d, want*time.Second)
		}
	}
	b.Reset()
	if d := b.Next(); !within(d, time.Second) {
		t.Errorf("after Reset: %s", d)
	}
	if Jitter(0) != 0 || Jitter(-time.Second) != 0 {
		t.Error("Jitter of a non-positive delay")
	}
}

func TestSleep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if !Sleep(ctx, time.Millisecond) {
		t.Error("Sleep ended early")
	}
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep outlived its context")
	}
}
