package tpm_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/zerotouch/zerotouch/attestation/tpm"
)

// fields splits the blob's six TPM2B fields.
func fields(t *testing.T, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatal("truncated blob")
		}
		n := int(binary.BigEndian.Uint16(b))
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

// TestAuthenticationKeyInTPM imports the HMAC key into a (simulated) TPM
// the way the Azure device SDK does, and checks the TPM's HMAC equals the
// server's: ActivateCredential with the EK (bound to the SRK's name)
// recovers the inner key, Import under the SRK, Load, HMAC.
func TestAuthenticationKeyInTPM(t *testing.T) {
	sim, err := simulator.GetWithFixedSeedInsecure(4242)
	if err != nil {
		t.Fatal(err)
	}
	tp := transport.FromReadWriteCloser(sim)
	defer tp.Close()
	ek, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(tpm2.RSAEKTemplate)}.Execute(tp)
	if err != nil {
		t.Fatal(err)
	}
	defer tpm2.FlushContext{FlushHandle: ek.ObjectHandle}.Execute(tp)
	srk, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.RSASRKTemplate)}.Execute(tp)
	if err != nil {
		t.Fatal(err)
	}
	defer tpm2.FlushContext{FlushHandle: srk.ObjectHandle}.Execute(tp)
	ekPub, _ := tpm.ParsePublic("ek", tpm2.Marshal(ek.OutPublic))
	srkPub, err := tpm.ParsePublic("srk", tpm2.Marshal(srk.OutPublic))
	if err != nil {
		t.Fatal(err)
	}
	if err := tpm.CheckSRK(srkPub); err != nil {
		t.Fatalf("CheckSRK: %v", err)
	}

	hmacKey := make([]byte, 32)
	rand.Read(hmacKey)
	blob, err := tpm.AuthenticationKey(rand.Reader, ekPub, srkPub, hmacKey)
	if err != nil {
		t.Fatal(err)
	}
	f := fields(t, blob)
	if len(f) != 6 || len(f[5]) != 0 {
		t.Fatalf("blob has %d fields", len(f))
	}
	srkHandle := tpm2.NamedHandle{Handle: srk.ObjectHandle, Name: srk.Name}
	act, err := tpm2.ActivateCredential{
		ActivateHandle: srkHandle,
		KeyHandle: tpm2.AuthHandle{Handle: ek.ObjectHandle, Name: ek.Name,
			Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(tp transport.TPM, h tpm2.TPMISHPolicy, nonce tpm2.TPM2BNonce) error {
				_, err := tpm2.PolicySecret{AuthHandle: tpm2.TPMRHEndorsement, PolicySession: h, NonceTPM: nonce}.Execute(tp)
				return err
			})},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: f[0]},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: f[1]},
	}.Execute(tp)
	if err != nil {
		t.Fatalf("ActivateCredential: %v", err)
	}
	innerKey := act.CertInfo.Buffer
	idPub, err := tpm2.Unmarshal[tpm2.TPMTPublic](f[4])
	if err != nil {
		t.Fatal(err)
	}
	imp, err := tpm2.Import{
		ParentHandle:  srkHandle,
		EncryptionKey: tpm2.TPM2BData{Buffer: innerKey},
		ObjectPublic:  tpm2.New2B(*idPub),
		Duplicate:     tpm2.TPM2BPrivate{Buffer: f[2]},
		InSymSeed:     tpm2.TPM2BEncryptedSecret{Buffer: f[3]},
		Symmetric: tpm2.TPMTSymDef{Algorithm: tpm2.TPMAlgAES, KeyBits: tpm2.NewTPMUSymKeyBits(tpm2.TPMAlgAES, tpm2.TPMKeyBits(128)),
			Mode: tpm2.NewTPMUSymMode(tpm2.TPMAlgAES, tpm2.TPMAlgCFB)},
	}.Execute(tp)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	loaded, err := tpm2.Load{ParentHandle: srkHandle, InPrivate: imp.OutPrivate, InPublic: tpm2.New2B(*idPub)}.Execute(tp)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer tpm2.FlushContext{FlushHandle: loaded.ObjectHandle}.Execute(tp)
	msg := []byte("0ne00000001%2Fregistrations%2Fdevice\n1795405127")
	got, err := tpm2.Hmac{Handle: tpm2.AuthHandle{Handle: loaded.ObjectHandle, Name: loaded.Name, Auth: tpm2.PasswordAuth(nil)},
		Buffer: tpm2.TPM2BMaxBuffer{Buffer: msg}, HashAlg: tpm2.TPMAlgSHA256}.Execute(tp)
	if err != nil {
		t.Fatalf("HMAC in the TPM: %v", err)
	}
	want := hmac.New(sha256.New, hmacKey)
	want.Write(msg)
	if !bytes.Equal(got.OutHMAC.Buffer, want.Sum(nil)) {
		t.Fatal("the TPM's HMAC differs from the server's")
	}
}
