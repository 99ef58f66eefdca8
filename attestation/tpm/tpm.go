// Package tpm verifies TPM 2.0 devices: it parses and checks endorsement
// keys (EKs) and the device-created key bound to them, derives the
// registration ID from an EK as DPS does, and makes the credential
// challenge (TPM2 MakeCredential, done in software) that only the TPM
// holding the EK can answer with ActivateCredential.
//
// It is a domain package: the standard library, go-tpm's tpm2 structures
// and crypto, and internal/fault. No storage, protobuf or gRPC.
package tpm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"io"
	"strings"

	"github.com/google/go-tpm/tpm2"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Limits on device-supplied TPM structures.
const (
	// MaxPublicSize bounds a TPM2B_PUBLIC (an RSA-2048 public area is
	// about 280-320 bytes).
	MaxPublicSize = 1024
	// SecretSize is the credential secret's length.
	SecretSize = 32
	// maxEKPEM bounds a PEM EK (an RSA-2048 public key is about 450 bytes).
	maxEKPEM = 2048
)

func malformed(what string, err error) error {
	return fault.Wrap(fault.InvalidArgument, fault.TPMStructureInvalid, err, "%s is not a valid TPM2B_PUBLIC", what)
}

// ParsePublic decodes a TPM2B_PUBLIC (2-byte size, then TPMT_PUBLIC), as
// devices and DPS send it, with nothing left over.
func ParsePublic(what string, b []byte) (*tpm2.TPMTPublic, error) {
	if len(b) < 2 || len(b) > MaxPublicSize {
		return nil, fault.New(fault.InvalidArgument, fault.TPMStructureInvalid, "%s is %d bytes; a TPM2B_PUBLIC is 2-%d", what, len(b), MaxPublicSize)
	}
	if n := int(binary.BigEndian.Uint16(b)); n != len(b)-2 {
		return nil, fault.New(fault.InvalidArgument, fault.TPMStructureInvalid, "%s declares %d bytes but carries %d", what, n, len(b)-2)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b[2:])
	if err != nil {
		return nil, malformed(what, err)
	}
	// Re-marshal: trailing bytes or a non-canonical encoding are refused.
	if again := tpm2.Marshal(pub); subtle.ConstantTimeCompare(again, b[2:]) != 1 {
		return nil, fault.New(fault.InvalidArgument, fault.TPMStructureInvalid, "%s has trailing or non-canonical bytes", what)
	}
	return pub, nil
}

// MarshalPublic encodes a public area as TPM2B_PUBLIC.
func MarshalPublic(pub *tpm2.TPMTPublic) []byte {
	body := tpm2.Marshal(pub)
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
}

// EKHash is the hex SHA-256 of an EK's TPM2B_PUBLIC bytes: the key under
// which individual TPM enrollments are found.
func EKHash(ekPublic []byte) string {
	sum := sha256.Sum256(ekPublic)
	return hex.EncodeToString(sum[:])
}

// RegistrationID derives a registration ID from an EK as DPS does:
// lowercase RFC 4648 base32 of SHA-256(TPM2B_PUBLIC), without padding.
func RegistrationID(ekPublic []byte) string {
	sum := sha256.Sum256(ekPublic)
	return strings.ToLower(strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:]), "="))
}

// CheckEK checks that pub is an endorsement key Zerotouch can challenge:
// RSA-2048 or ECC NIST P-256, a restricted decryption key that cannot leave
// its TPM, with SHA-256 names.
func CheckEK(pub *tpm2.TPMTPublic) error {
	a := pub.ObjectAttributes
	if !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.Restricted || !a.Decrypt || a.SignEncrypt {
		return fault.New(fault.InvalidArgument, fault.TPMKeyAttributesInvalid, "the EK must be a restricted decryption key fixed to its TPM")
	}
	if pub.NameAlg != tpm2.TPMAlgSHA256 {
		return fault.New(fault.InvalidArgument, fault.TPMKeyAttributesInvalid, "the EK's name algorithm must be SHA-256")
	}
	switch pub.Type {
	case tpm2.TPMAlgRSA:
		p, err := pub.Parameters.RSADetail()
		if err != nil || p.KeyBits != 2048 {
			return fault.New(fault.InvalidArgument, fault.KeyUnsupported, "an RSA EK must be 2048 bits")
		}
	case tpm2.TPMAlgECC:
		p, err := pub.Parameters.ECCDetail()
		if err != nil || p.CurveID != tpm2.TPMECCNistP256 {
			return fault.New(fault.InvalidArgument, fault.KeyUnsupported, "an ECC EK must be on NIST P-256")
		}
	default:
		return fault.New(fault.InvalidArgument, fault.KeyUnsupported, "the EK must be RSA-2048 or ECC P-256")
	}
	if _, err := tpm2.ImportEncapsulationKey(pub); err != nil {
		return fault.Wrap(fault.InvalidArgument, fault.TPMStructureInvalid, err, "the EK's parameters cannot encrypt a credential")
	}
	return nil
}

// EKFromPEM builds an EK public area from a PEM public key (what vendors
// and some tools export), using the TCG default EK template for its type.
func EKFromPEM(text string) ([]byte, error) {
	if len(text) > maxEKPEM {
		return nil, fault.Invalidf("endorsement key PEM is %d bytes, at most %d allowed", len(text), maxEKPEM)
	}
	block, rest := pem.Decode([]byte(text))
	if block == nil || block.Type != "PUBLIC KEY" || strings.TrimSpace(string(rest)) != "" {
		return nil, fault.Invalidf("endorsement key PEM must hold exactly one PUBLIC KEY block")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "endorsement key PEM is not a public key")
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() != 2048 || k.E != 65537 {
			return nil, fault.New(fault.InvalidArgument, fault.KeyUnsupported, "an RSA EK must be 2048 bits with exponent 65537")
		}
		t := tpm2.RSAEKTemplate
		t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: k.N.Bytes()})
		return MarshalPublic(&t), nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fault.New(fault.InvalidArgument, fault.KeyUnsupported, "an ECC EK must be on P-256")
		}
		ecdh, err := k.ECDH()
		if err != nil {
			return nil, fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "endorsement key")
		}
		raw := ecdh.Bytes() // 0x04 || X || Y
		t := tpm2.ECCEKTemplate
		t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: raw[1:33]}, Y: tpm2.TPM2BECCParameter{Buffer: raw[33:]}})
		return MarshalPublic(&t), nil
	}
	return nil, fault.New(fault.InvalidArgument, fault.KeyUnsupported, "the EK must be RSA-2048 or ECC P-256")
}

// CheckBoundKey checks the key the device created in its TPM to be bound
// to its identity: a signing key (restricted, like an attestation key, or
// not) that can never leave the TPM: fixedTPM, fixedParent,
// sensitiveDataOrigin, SHA-256 names, and an accepted algorithm.
func CheckBoundKey(pub *tpm2.TPMTPublic) error {
	a := pub.ObjectAttributes
	if !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin {
		return fault.New(fault.InvalidArgument, fault.TPMKeyAttributesInvalid, "the bound key must be created in the TPM and never leave it (fixedTPM, fixedParent, sensitiveDataOrigin)")
	}
	if !a.SignEncrypt || a.Decrypt {
		return fault.New(fault.InvalidArgument, fault.TPMKeyAttributesInvalid, "the bound key must be a signing key")
	}
	if pub.NameAlg != tpm2.TPMAlgSHA256 {
		return fault.New(fault.InvalidArgument, fault.TPMKeyAttributesInvalid, "the bound key's name algorithm must be SHA-256")
	}
	key, err := tpm2.Pub(*pub)
	if err != nil {
		return fault.Wrap(fault.InvalidArgument, fault.TPMStructureInvalid, err, "the bound key's public area")
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fault.New(fault.InvalidArgument, fault.KeyTooWeak, "the bound RSA key must be at least 2048 bits")
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fault.New(fault.InvalidArgument, fault.KeyUnsupported, "the bound ECC key must be on P-256 or P-384")
		}
	default:
		return fault.New(fault.InvalidArgument, fault.KeyUnsupported, "the bound key must be RSA or ECC")
	}
	return nil
}

// Name is a public area's TPM name.
func Name(pub *tpm2.TPMTPublic) ([]byte, error) {
	n, err := tpm2.ObjectName(pub)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.TPMStructureInvalid, err, "compute the key's name")
	}
	return n.Buffer, nil
}

// Challenge is a credential challenge and the hash of its secret.
type Challenge struct {
	CredentialBlob  []byte // TPM2B_ID_OBJECT contents
	EncryptedSecret []byte // TPM2B_ENCRYPTED_SECRET contents
	SecretHash      []byte // SHA-256 of the secret: what the server keeps
}

// MakeCredential encrypts a fresh random secret to the EK, bound to the
// name of the key the device claims to hold in the same TPM.
func MakeCredential(rand io.Reader, ek *tpm2.TPMTPublic, boundKeyName []byte) (*Challenge, error) {
	key, err := tpm2.ImportEncapsulationKey(ek)
	if err != nil {
		return nil, fault.Wrap(fault.InvalidArgument, fault.TPMStructureInvalid, err, "the EK cannot encrypt a credential")
	}
	secret := make([]byte, SecretSize)
	if _, err := io.ReadFull(rand, secret); err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "credential secret")
	}
	blob, enc, err := tpm2.CreateCredential(rand, key, boundKeyName, secret)
	if err != nil {
		return nil, fault.Wrap(fault.Internal, fault.InternalError, err, "make credential")
	}
	sum := sha256.Sum256(secret)
	return &Challenge{CredentialBlob: blob, EncryptedSecret: enc, SecretHash: sum[:]}, nil
}

// CheckSecret compares, in constant time, the secret a device recovered
// with the hash the server kept.
func CheckSecret(secretHash, recovered []byte) error {
	sum := sha256.Sum256(recovered)
	if len(recovered) != SecretSize || subtle.ConstantTimeCompare(sum[:], secretHash) != 1 {
		return fault.New(fault.Unauthenticated, fault.TPMChallengeFailed, "the TPM did not prove possession of the endorsement key")
	}
	return nil
}

// PublicKey returns the crypto public key of a public area.
func PublicKey(pub *tpm2.TPMTPublic) (crypto.PublicKey, error) { return tpm2.Pub(*pub) }
