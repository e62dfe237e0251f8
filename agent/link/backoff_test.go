package link

import (
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	const (
		least = 100 * time.Millisecond
		most  = 5 * time.Second
	)
	// The first retry comes after exactly 100ms: nothing to jitter.
	for range 100 {
		if d := backoff(0); d != least {
			t.Fatalf("backoff(0) = %v, want %v", d, least)
		}
	}
	for _, attempt := range []int{1, 2, 3, 4, 5, 6, 7, 10, 16, 17, 62, 63, 64, 1 << 20} {
		ceiling := most
		if attempt < 6 { // 100ms << 6 = 6.4s is past the cap
			ceiling = least << attempt
		}
		var hi time.Duration
		for range 500 {
			d := backoff(attempt)
			if d < least || d > ceiling {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, least, ceiling)
			}
			hi = max(hi, d)
		}
		// The ceiling is reached, not just respected: 500 uniform draws all
		// in the lower nine tenths of the range happen with odds of 1e-23.
		if hi < ceiling-(ceiling-least)/10 {
			t.Errorf("backoff(%d): largest of 500 draws %v, want close to %v", attempt, hi, ceiling)
		}
	}
}
