// Package jointoken is the format of the tokens agents join a cluster
// with, in the manner of k3s: BERTH1:<CA fingerprint>:<id>.<secret>. The
// fingerprint (SHA-256 of the cluster CA's certificate, hex) lets a new
// agent trust the server's TLS before it has any other credential; the id
// names the token (to list and revoke it); the secret proves it. The same
// format carries the single-use tokens a new server's etcd member joins
// with. FetchCA is the package's only I/O.
package jointoken

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Token is a parsed join token.
type Token struct {
	CAFingerprint string // hex SHA-256 of the CA certificate (DER)
	ID            string
	Secret        string
}

const prefix = "BERTH1:"

var (
	fpRE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	idRE     = regexp.MustCompile(`^[0-9a-f]{8}$`)
	secretRE = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// ErrMalformed is returned for anything that is not a join token.
var ErrMalformed = errors.New("not a Berth join token (BERTH1:<CA fingerprint>:<id>.<secret>)")

// New makes a token with a fresh id and secret for a CA.
func New(caFingerprint string) Token {
	return Token{CAFingerprint: caFingerprint, ID: randomHex(4), Secret: randomHex(16)}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// String is the token as users pass it around.
func (t Token) String() string {
	return prefix + t.CAFingerprint + ":" + t.ID + "." + t.Secret
}

// Credential is the part an agent sends to join: id and secret.
func (t Token) Credential() string { return t.ID + "." + t.Secret }

// Parse reads a token.
func Parse(s string) (Token, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), prefix)
	if !ok {
		return Token{}, ErrMalformed
	}
	fp, cred, ok := strings.Cut(rest, ":")
	if !ok || !fpRE.MatchString(fp) {
		return Token{}, ErrMalformed
	}
	t, err := ParseCredential(cred)
	t.CAFingerprint = fp
	return t, err
}

// ParseCredential reads the id.secret part.
func ParseCredential(s string) (Token, error) {
	id, secret, ok := strings.Cut(s, ".")
	if !ok || !idRE.MatchString(id) || !secretRE.MatchString(secret) {
		return Token{}, ErrMalformed
	}
	return Token{ID: id, Secret: secret}, nil
}

// SecretSHA256 is what a server keeps of a token's secret.
func (t Token) SecretSHA256() string {
	sum := sha256.Sum256([]byte(t.Secret))
	return hex.EncodeToString(sum[:])
}

// Fingerprint is the hex SHA-256 of the first certificate in a PEM block.
func Fingerprint(caPEM []byte) (string, error) {
	b, _ := pem.Decode(caPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return "", fmt.Errorf("no PEM certificate")
	}
	sum := sha256.Sum256(b.Bytes)
	return hex.EncodeToString(sum[:]), nil
}
