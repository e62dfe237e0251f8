package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// checkEvery bounds how often the files behind a KeyPair or CAPool are
// examined, so a busy server stats them at most once a second.
const checkEvery = time.Second

// KeyPair is a certificate and key loaded from two files and reloaded when
// either changes (by modification time or size), examined at most once a
// second as handshakes ask for it. If a reload fails the previous pair stays
// in use and Err reports why. Its methods are safe for concurrent use.
type KeyPair struct {
	w *watched[*tls.Certificate]
}

// NewKeyPair loads the PEM certificate (chain) in certFile and the matching
// key in keyFile.
func NewKeyPair(certFile, keyFile string) (*KeyPair, error) {
	w, err := newWatched("key pair", func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
		}
		return &c, nil
	}, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &KeyPair{w: w}, nil
}

// GetCertificate returns the current pair; it is the tls.Config hook of a
// server. It never fails once NewKeyPair has succeeded.
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.w.current(), nil
}

// GetClientCertificate returns the current pair; it is the tls.Config hook
// of a client. It never fails once NewKeyPair has succeeded.
func (k *KeyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.w.current(), nil
}

// Reload reads both files now, changed or not (for SIGHUP). On failure the
// previous pair stays in use.
func (k *KeyPair) Reload() error { return k.w.reload() }

// Err returns why the last reload failed, or nil if it succeeded.
func (k *KeyPair) Err() error { return k.w.lastErr() }

// CAPool is a set of trusted CA certificates loaded from one PEM file and
// reloaded, like KeyPair, when the file changes. Its methods are safe for
// concurrent use.
type CAPool struct {
	w *watched[*x509.CertPool]
}

// NewCAPool loads the CA certificates in file, which must hold at least one
// CERTIFICATE block and nothing else.
func NewCAPool(file string) (*CAPool, error) {
	w, err := newWatched("CA pool", func() (*x509.CertPool, error) { return loadPool(file) }, file)
	if err != nil {
		return nil, err
	}
	return &CAPool{w: w}, nil
}

// Pool returns the current CA certificates. The pool is shared: callers
// must not add to it.
func (p *CAPool) Pool() *x509.CertPool { return p.w.current() }

// Reload reads the file now, changed or not. On failure the previous pool
// stays in use.
func (p *CAPool) Reload() error { return p.w.reload() }

// Err returns why the last reload failed, or nil if it succeeded.
func (p *CAPool) Err() error { return p.w.lastErr() }

func loadPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			if n == 1 {
				return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", file)
			}
			return pool, nil
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: PEM block %d is %q, want only CERTIFICATE blocks", file, n, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", file, n, err)
		}
		pool.AddCert(c)
	}
}

// stamp identifies one version of a file well enough to notice a rewrite.
type stamp struct {
	modNanos int64
	size     int64
}

// watched holds a value loaded from files and loads it again when they
// change.
type watched[T any] struct {
	what  string // what is loaded, for errors
	files []string
	load  func() (T, error)
	every time.Duration    // least time between checks of the files
	now   func() time.Time // replaced by tests

	mu      sync.Mutex
	value   T
	loaded  []stamp // the files' stamps, taken before value was read
	checked time.Time
	err     error
}

func newWatched[T any](what string, load func() (T, error), files ...string) (*watched[T], error) {
	w := &watched[T]{what: what, files: files, load: load, every: checkEvery, now: time.Now}
	if err := w.reload(); err != nil {
		return nil, err
	}
	return w, nil
}

// current returns the value, first reloading it if the files have changed
// and were not examined within the last w.every.
func (w *watched[T]) current() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if now.Sub(w.checked) < w.every {
		return w.value
	}
	w.checked = now
	stamps, err := w.stat()
	if err != nil {
		w.err = err
		return w.value
	}
	// The stamps of a failed load are not kept, so broken files are tried
	// again at the next check until they load.
	if !slices.Equal(stamps, w.loaded) {
		_ = w.loadLocked(stamps) // kept in w.err
	}
	return w.value
}

func (w *watched[T]) reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checked = w.now()
	stamps, err := w.stat()
	if err != nil {
		w.err = err
		return err
	}
	return w.loadLocked(stamps)
}

// loadLocked loads the value from files whose stamps, taken before reading,
// are stamps: a file rewritten after the stat is then seen as changed at
// the next check, never missed.
func (w *watched[T]) loadLocked(stamps []stamp) error {
	v, err := w.load()
	if err != nil {
		w.err = fmt.Errorf("load %s: %w", w.what, err)
		return w.err
	}
	w.value, w.loaded, w.err = v, stamps, nil
	return nil
}

func (w *watched[T]) stat() ([]stamp, error) {
	stamps := make([]stamp, len(w.files))
	for i, f := range w.files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", w.what, err)
		}
		stamps[i] = stamp{modNanos: fi.ModTime().UnixNano(), size: fi.Size()}
	}
	return stamps, nil
}

func (w *watched[T]) lastErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
