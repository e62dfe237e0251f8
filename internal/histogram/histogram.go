// Package histogram is a lock-free latency histogram with microsecond
// resolution, cheap enough to record every proxied request.
//
// Buckets are log-linear (HDR style): values below 32 µs have a bucket
// each; above, every power of two is split into 16 buckets, so a bucket is
// at most 1/16 (6.25%) wider than its lower bound. Recording is two atomic
// adds and never allocates; concurrent Record and Snapshot calls are safe.
package histogram

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	subBits = 4
	sub     = 1 << subBits // buckets per power of two
	// Buckets is enough for values up to 2^52 µs (about 140 years).
	Buckets = (52 - subBits) * sub
)

// Histogram counts durations. The zero value is ready to use.
type Histogram struct {
	counts [Buckets]atomic.Uint64
	total  atomic.Uint64
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	h.counts[Index(uint64(max(d.Microseconds(), 0)))].Add(1)
	h.total.Add(1)
}

// Index is the bucket of a value in microseconds.
func Index(us uint64) int {
	if us < 2*sub {
		return int(us)
	}
	shift := bits.Len64(us) - subBits - 1
	i := (shift+1)*sub + int(us>>shift) - sub
	return min(i, Buckets-1)
}

// Upper is the largest value, in microseconds, that falls in bucket i.
func Upper(i int) uint64 {
	if i < 2*sub {
		return uint64(i)
	}
	shift := i/sub - 1
	top := uint64(i%sub + sub)
	return (top+1)<<shift - 1
}

// Snapshot is a point-in-time copy of a histogram's counts.
type Snapshot struct {
	Counts [Buckets]uint64
	Total  uint64
}

// Snapshot copies the counts. Under concurrent Records the copy may miss
// the newest few, never count one twice.
func (h *Histogram) Snapshot() *Snapshot {
	s := &Snapshot{}
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Total += s.Counts[i]
	}
	return s
}

// Quantile returns the q-quantile (0 < q <= 1) as the upper bound of the
// bucket holding it, so the true value is at most that and within 1/16 of
// it; zero when nothing was recorded.
func (s *Snapshot) Quantile(q float64) time.Duration {
	if s.Total == 0 {
		return 0
	}
	rank := uint64(q*float64(s.Total) + 0.999999) // nearest rank, rounded up
	rank = max(min(rank, s.Total), 1)
	var seen uint64
	for i, n := range s.Counts {
		seen += n
		if seen >= rank {
			return time.Duration(Upper(i)) * time.Microsecond
		}
	}
	return time.Duration(Upper(Buckets-1)) * time.Microsecond
}
