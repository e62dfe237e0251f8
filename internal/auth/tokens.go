package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"

	"sigs.k8s.io/yaml"
)

// TokenPrefix starts every token Cutover issues, so a leaked one is easy to
// recognise (and to scan for).
const TokenPrefix = "cot_"

// hashPrefix names the hash function of a stored secret.
const hashPrefix = "sha256:"

// maxTokensFile bounds what a tokens file may hold.
const maxTokensFile = 4 << 20

var subjectRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$`)

// Grant is one role, optionally scoped to apps and clusters by glob
// patterns (path.Match syntax); an empty list means every one.
type Grant struct {
	Role     Role     `json:"role"`
	Apps     []string `json:"apps,omitempty"`
	Clusters []string `json:"clusters,omitempty"`
}

// tokenEntry is one line of a tokens file.
type tokenEntry struct {
	Subject string  `json:"subject"`
	Hash    string  `json:"hash"`
	Roles   []Grant `json:"roles"`
}

type tokensFile struct {
	Tokens []tokenEntry `json:"tokens"`
}

// TokenSet is a parsed tokens file: secrets only as hashes.
type TokenSet struct {
	byHash map[[sha256.Size]byte]*Principal
}

// ParseTokens parses a tokens file (YAML or JSON):
//
//	tokens:
//	  - subject: alice
//	    hash: sha256:<64 hex digits: SHA-256 of the token>
//	    roles:
//	      - role: deployer
//	        apps: ["payments-*"]
//	        clusters: ["eu-*"]
//
// Every problem is reported with its path, e.g.
// "tokens[1].roles[0].role: unknown role "god"".
func ParseTokens(data []byte) (*TokenSet, error) {
	if len(data) > maxTokensFile {
		return nil, fmt.Errorf("tokens file: %d bytes, at most %d", len(data), maxTokensFile)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	var f tokensFile
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	set := &TokenSet{byHash: map[[sha256.Size]byte]*Principal{}}
	subjects := map[string]bool{}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for i, e := range f.Tokens {
		p := fmt.Sprintf("tokens[%d]", i)
		switch {
		case e.Subject == "":
			add("%s.subject: is required", p)
		case !subjectRE.MatchString(e.Subject):
			add("%s.subject: %q must be 1-128 letters, digits, '.', '_', '@', ':' or '-'", p, e.Subject)
		case subjects[e.Subject]:
			add("%s.subject: %q has another token already (one token per subject; rotate by replacing it)", p, e.Subject)
		}
		subjects[e.Subject] = true
		sum, err := parseHash(e.Hash)
		if err != nil {
			add("%s.hash: %v", p, err)
		} else if _, dup := set.byHash[sum]; dup {
			add("%s.hash: the same secret as another token", p)
		}
		if len(e.Roles) == 0 {
			add("%s.roles: at least one role is required", p)
		}
		for j, g := range e.Roles {
			gp := fmt.Sprintf("%s.roles[%d]", p, j)
			if _, ok := rolePermissions[g.Role]; !ok {
				add("%s.role: unknown role %q (%s)", gp, g.Role, strings.Join(roleNames(), ", "))
			}
			for k, pat := range g.Apps {
				if err := checkPattern(pat); err != nil {
					add("%s.apps[%d]: %v", gp, k, err)
				}
			}
			for k, pat := range g.Clusters {
				if err := checkPattern(pat); err != nil {
					add("%s.clusters[%d]: %v", gp, k, err)
				}
			}
		}
		if err == nil {
			set.byHash[sum] = &Principal{Subject: e.Subject, Grants: e.Roles}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("tokens file: %s", strings.Join(problems, "; "))
	}
	return set, nil
}

func parseHash(s string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	hexed, ok := strings.CutPrefix(s, hashPrefix)
	if !ok {
		return sum, fmt.Errorf("must be %q followed by 64 hex digits (the SHA-256 of the token), got %q", hashPrefix, s)
	}
	b, err := hex.DecodeString(hexed)
	if err != nil || len(b) != sha256.Size {
		return sum, fmt.Errorf("must be %q followed by 64 hex digits, got %q", hashPrefix, s)
	}
	copy(sum[:], b)
	return sum, nil
}

func checkPattern(p string) error {
	if p == "" {
		return errors.New("empty pattern")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q is not a valid pattern: %w", p, err)
	}
	return nil
}

// Lookup returns the principal a token belongs to, or nil. It looks the
// token's SHA-256 up, never the secret itself: how long the lookup takes
// can tell at most something about a hash, from which no token can be
// worked out (the way hashed API tokens are commonly checked).
func (s *TokenSet) Lookup(token string) *Principal {
	if s == nil || token == "" {
		return nil
	}
	return s.byHash[sha256.Sum256([]byte(token))]
}

// Len is the number of tokens.
func (s *TokenSet) Len() int { return len(s.byHash) }

// NewToken returns a fresh random token and the hash a tokens file stores
// for it.
func NewToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("random token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken is the stored form of a token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hashPrefix + hex.EncodeToString(sum[:])
}

// EntryYAML is the tokens-file entry for a subject, its token's hash and
// grants, ready to be appended under "tokens:".
func EntryYAML(subject, hash string, grants []Grant) (string, error) {
	b, err := yaml.Marshal([]tokenEntry{{Subject: subject, Hash: hash, Roles: grants}})
	if err != nil {
		return "", fmt.Errorf("tokens entry: %w", err)
	}
	return string(b), nil
}

// TokenFile is a tokens file on disk, the Authenticator for bearer
// tokens. Reload re-reads it (on SIGHUP); a file that no longer parses
// leaves the tokens in force unchanged.
type TokenFile struct {
	path string
	mu   sync.RWMutex
	set  *TokenSet
}

// LoadTokenFile reads and parses a tokens file.
func LoadTokenFile(file string) (*TokenFile, error) {
	t := &TokenFile{path: file}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload re-reads the file; on error the previous tokens stay in force.
func (t *TokenFile) Reload() error {
	data, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("--tokens-file: %w", err)
	}
	set, err := ParseTokens(data)
	if err != nil {
		return fmt.Errorf("--tokens-file %s: %w", t.path, err)
	}
	t.mu.Lock()
	t.set = set
	t.mu.Unlock()
	return nil
}

// Len is the number of tokens in force.
func (t *TokenFile) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.set.Len()
}

// Authenticate implements Authenticator.
func (t *TokenFile) Authenticate(_ context.Context, bearer string) (*Principal, error) {
	t.mu.RLock()
	set := t.set
	t.mu.RUnlock()
	if p := set.Lookup(bearer); p != nil {
		return p, nil
	}
	return nil, ErrUnknownToken
}
