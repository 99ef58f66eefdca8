// Package secrets seals secrets that must be usable later, not just
// compared (symmetric enrollment keys, which sign SAS tokens), before they
// are stored: AES-256-GCM under a data key that lives outside the store,
// with the record's identity as associated data so that a sealed value
// cannot be moved to another record. Every sealed value names its key, so
// a replica with the wrong data key fails loudly instead of decrypting
// garbage.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/zerotouch/zerotouch/internal/fault"
)

const keyIDSize = 4

// Sealer seals and opens secrets with one data key.
type Sealer struct {
	aead  cipher.AEAD
	keyID [keyIDSize]byte
	// derive is an HKDF key for keys derived from the data key.
	derive []byte
	// challenges seals TPM challenges (custody.go), made once.
	challengesOnce sync.Once
	challenges     *Sealer
}

// New makes a Sealer from a 32-byte data key.
func New(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("data key must be 32 bytes, not %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, key, []byte("zerotouch derived keys"))
	if err != nil {
		return nil, err
	}
	s := &Sealer{aead: aead, derive: prk}
	sum := sha256.Sum256(append([]byte("zerotouch data key id:"), key...))
	copy(s.keyID[:], sum[:])
	return s, nil
}

// Derive returns a 32-byte key for a purpose, derived from the data key
// (HKDF-SHA256): every replica with the same data key derives the same key,
// and no stored secret is needed.
func (s *Sealer) Derive(purpose string) []byte {
	k, err := hkdf.Expand(sha256.New, s.derive, purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot produce
	}
	return k
}

// LoadOrCreate reads a data key file (base64 of 32 bytes), creating it
// with a fresh key, mode 0600, when create is true and it does not exist.
func LoadOrCreate(path string, create bool) (*Sealer, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		enc := base64.StdEncoding.EncodeToString(key) + "\n"
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("data key: %w", err)
		}
		_, werr := f.WriteString(enc)
		if err := errors.Join(werr, f.Close()); err != nil {
			return nil, fmt.Errorf("data key: %w", err)
		}
		return New(key)
	}
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("data key %s is not base64: %w", path, err)
	}
	return New(key)
}

// Seal encrypts plain, bound to aad.
func (s *Sealer) Seal(plain []byte, aad string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(append([]byte{}, s.keyID[:]...), nonce...)
	return s.aead.Seal(out, nonce, plain, []byte(aad)), nil
}

// Open decrypts what Seal made for the same aad.
func (s *Sealer) Open(sealed []byte, aad string) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < keyIDSize+ns+s.aead.Overhead() {
		return nil, fault.New(fault.Internal, fault.InternalError, "sealed secret is too short")
	}
	if string(sealed[:keyIDSize]) != string(s.keyID[:]) {
		return nil, fault.New(fault.Internal, fault.InternalError, "secret sealed under another data key: every replica needs the same secrets.data_key_file")
	}
	plain, err := s.aead.Open(nil, sealed[keyIDSize:keyIDSize+ns], sealed[keyIDSize+ns:], []byte(aad))
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "open sealed secret")
	}
	return plain, nil
}
