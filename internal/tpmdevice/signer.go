package tpmdevice

import (
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/google/go-tpm/tpm2"

	"github.com/zerotouch/zerotouch/attestation/tpm"
)

// Signer is the bound key as a crypto.MessageSigner, for a CSR whose
// certificate then lives in the TPM (ADR 22). The bound key is a
// restricted signing key: it signs only what the TPM hashed itself (the
// hash ticket proves the message is not a forged TPM attestation), so it
// signs whole messages (crypto.SignMessage, which x509's CSR and
// certificate signing use) of at most 1,024 bytes, with SHA-256.
func (d *Device) Signer() (crypto.MessageSigner, error) {
	pt, err := tpm.ParsePublic("bound key", d.boundPub)
	if err != nil {
		return nil, err
	}
	pub, err := tpm.PublicKey(pt)
	if err != nil {
		return nil, err
	}
	return &signer{d: d, pub: pub}, nil
}

type signer struct {
	d   *Device
	pub crypto.PublicKey
}

func (s *signer) Public() crypto.PublicKey { return s.pub }

// Sign refuses: a restricted key signs no digest it did not make.
func (s *signer) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("the TPM's bound key is restricted: it signs whole messages (SignMessage), not digests")
}

// SignMessage hashes msg in the TPM and signs the digest with its ticket.
func (s *signer) SignMessage(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.SHA256 {
		return nil, fmt.Errorf("the bound key signs with SHA-256, not %v", opts.HashFunc())
	}
	if len(msg) > 1024 {
		return nil, fmt.Errorf("message of %d bytes: the TPM hashes at most 1024 in one command", len(msg))
	}
	h, err := tpm2.Hash{Data: tpm2.TPM2BMaxBuffer{Buffer: msg}, HashAlg: tpm2.TPMAlgSHA256, Hierarchy: tpm2.TPMRHOwner}.Execute(s.d.tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM2_Hash: %w", err)
	}
	rsp, err := tpm2.Sign{
		KeyHandle: tpm2.AuthHandle{Handle: s.d.key.Handle, Name: s.d.key.Name, Auth: tpm2.PasswordAuth(nil)},
		Digest:    h.OutHash,
		InScheme: tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256})},
		Validation: h.Validation,
	}.Execute(s.d.tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM2_Sign: %w", err)
	}
	sig, err := rsp.Signature.Signature.ECDSA()
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig.SignatureR.Buffer), new(big.Int).SetBytes(sig.SignatureS.Buffer)})
}
