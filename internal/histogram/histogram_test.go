package histogram_test

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/internal/histogram"
)

// Every value falls in the bucket whose bounds hold it, buckets are
// contiguous, and no bucket is wider than 1/16 of its lower bound.
func TestBucketsCoverEveryValue(t *testing.T) {
	prevUpper := uint64(0)
	for i := 1; i < histogram.Buckets; i++ {
		lower, upper := prevUpper+1, histogram.Upper(i)
		if i > 0 && histogram.Index(lower) != i || histogram.Index(upper) != i {
			t.Fatalf("bucket %d is [%d, %d], but Index(%d)=%d Index(%d)=%d", i, lower, upper, lower, histogram.Index(lower), upper, histogram.Index(upper))
		}
		if width := upper - lower + 1; lower >= 32 && width*16 > lower {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/16 of its lower bound", i, lower, upper)
		}
		prevUpper = upper
	}
	for _, v := range []uint64{0, 1, 31, 32, 33, 1000, 250, 1 << 20, 1<<40 + 12345} {
		i := histogram.Index(v)
		if v > histogram.Upper(i) || i > 0 && v <= histogram.Upper(i-1) {
			t.Errorf("Index(%d) = %d, bounds (%d, %d]", v, i, histogram.Upper(i-1), histogram.Upper(i))
		}
	}
}

// Quantiles agree with the exact ones within the bucket resolution.
func TestQuantilesMatchExactWithinResolution(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram.Histogram
	var values []time.Duration
	for range 20000 {
		v := time.Duration(rng.ExpFloat64()*2000) * time.Microsecond // mean 2 ms
		values = append(values, v)
		h.Record(v)
	}
	slices.Sort(values)
	s := h.Snapshot()
	if s.Total != 20000 {
		t.Fatalf("total %d", s.Total)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := values[int(q*float64(len(values))+0.999999)-1].Truncate(time.Microsecond)
		got := s.Quantile(q)
		if got < exact || float64(got) > float64(exact)*(1+1.0/16)+float64(time.Microsecond) {
			t.Errorf("p%v = %v, exact %v: outside the bucket resolution", q*100, got, exact)
		}
	}
	var empty histogram.Histogram
	if got := empty.Snapshot().Quantile(0.99); got != 0 {
		t.Errorf("empty p99 = %v", got)
	}
}

func TestConcurrentRecord(t *testing.T) {
	var h histogram.Histogram
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10000 {
				h.Record(time.Duration(i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	if got := h.Snapshot().Total; got != 80000 {
		t.Errorf("total %d, want 80000", got)
	}
}

func BenchmarkRecord(b *testing.B) {
	var h histogram.Histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := 137 * time.Microsecond
		for pb.Next() {
			h.Record(d)
		}
	})
}
