package event

import (
	"strconv"
	"testing"
)

func fill(e *Event, parsed, meta int) {
	for i := range parsed {
		e.Parsed["p"+strconv.Itoa(i)] = "v"
	}
	for i := range meta {
		e.Meta["m"+strconv.Itoa(i)] = "v"
	}
	e.Enriched["e"] = "v"
}

func TestMakerReusesDroppedMaps(t *testing.T) {
	var m Maker
	a := m.New(Line{Raw: "a"})
	fill(&a, 8, 3)
	parsed := a.Parsed
	m.Drop(&a)
	if a.Parsed != nil || a.Meta != nil || a.Enriched != nil {
		t.Fatalf("a dropped event keeps its maps: %v %v %v", a.Parsed, a.Meta, a.Enriched)
	}
	b := m.New(Line{Raw: "b"})
	if len(b.Parsed)+len(b.Meta)+len(b.Enriched) != 0 {
		t.Fatalf("reused maps not empty: %v %v %v", b.Parsed, b.Meta, b.Enriched)
	}
	b.Parsed["x"] = "1"
	if parsed["x"] != "1" {
		t.Fatal("the dropped event's Parsed map was not reused")
	}
	if b.Type != LOG || !b.Process || b.Line.Raw != "b" {
		t.Fatalf("event not as New makes it: %+v", b)
	}
	// A kept event's maps are never handed out again.
	m.Kept(&b)
	c := m.New(Line{Raw: "c"})
	c.Parsed["y"] = "2"
	if _, ok := b.Parsed["y"]; ok {
		t.Fatal("a kept event's map was reused")
	}
}

func TestMakerSizesFromKeptEvents(t *testing.T) {
	var m Maker
	for range makerWindow {
		e := m.New(Line{})
		fill(&e, 5, 2)
		m.Kept(&e)
	}
	if want := (sizes{parsed: 5, enriched: 1, meta: 2}); m.hint != want || !m.sized {
		t.Fatalf("hint %+v after a window of 5/1/2 fields, want %+v", m.hint, want)
	}
	for i := range makerWindow {
		e := m.New(Line{})
		fill(&e, 3, 1)
		if i == 7 {
			fill(&e, 9, 1) // one larger event sizes the next window
		}
		m.Kept(&e)
	}
	if m.hint.parsed != 9 {
		t.Fatalf("parsed hint %d, want the window's largest, 9", m.hint.parsed)
	}
}

// BenchmarkEvents compares New with a Maker on a stream where 80% of the
// lines are dropped unparsed (8 fields) and the rest kept (13 fields), as
// in an sshd log.
func BenchmarkEvents(b *testing.B) {
	keep := func(i int) bool { return i%5 == 0 }
	b.Run("New", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			e := New(Line{})
			if keep(i) {
				fill(&e, 13, 8)
			} else {
				fill(&e, 8, 3)
			}
		}
	})
	b.Run("Maker", func(b *testing.B) {
		b.ReportAllocs()
		var m Maker
		for i := 0; b.Loop(); i++ {
			e := m.New(Line{})
			if keep(i) {
				fill(&e, 13, 8)
				m.Kept(&e)
			} else {
				fill(&e, 8, 3)
				m.Drop(&e)
			}
		}
	})
}

func TestMakerLeavesHugeMapsToTheCollector(t *testing.T) {
	var m Maker
	a := m.New(Line{})
	fill(&a, maxHint+1, 1)
	big := a.Parsed
	m.Drop(&a)
	b := m.New(Line{})
	b.Parsed["x"] = "1"
	if _, ok := big["x"]; ok {
		t.Fatal("a map grown past maxHint was reused")
	}
}
