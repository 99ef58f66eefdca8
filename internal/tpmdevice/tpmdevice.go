// Package tpmdevice is the device side of TPM registration: it opens a TPM
// (a character device such as /dev/tpmrm0, or the in-process TPM
// simulator from go-tpm-tools for tests and demos), reads its endorsement
// key, creates a signing key that cannot leave the TPM, and answers the
// service's credential challenge with ActivateCredential.
package tpmdevice

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Open opens a TPM: path "" or "simulator" starts the in-process simulator
// (one per process) with the given seed, so that its EK is the same every
// run; otherwise path names a TPM character device.
func Open(path string, seed int64) (transport.TPMCloser, error) {
	if path == "" || path == "simulator" {
		sim, err := simulator.GetWithFixedSeedInsecure(seed)
		if err != nil {
			return nil, fmt.Errorf("TPM simulator: %w", err)
		}
		return transport.FromReadWriteCloser(sim), nil
	}
	return transport.OpenTPM(path)
}

// KeyType picks the EK's algorithm.
type KeyType string

// EK algorithms.
const (
	RSA KeyType = "rsa"
	ECC KeyType = "ecc"
)

// BoundKeyTemplate is an ECC P-256 restricted signing key (an attestation
// key): fixed to the TPM and its parent, created inside the TPM.
var BoundKeyTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true,
		Restricted: true, SignEncrypt: true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
		CurveID: tpm2.TPMECCNistP256,
	}),
}

// Device is an EK and a bound signing key, loaded in a TPM.
type Device struct {
	tpm      transport.TPM
	ek       tpm2.NamedHandle
	key      tpm2.NamedHandle
	ekPub    []byte
	boundPub []byte
	ekCerts  [][]byte
}

// Options vary the keys.
type Options struct {
	// BoundKey replaces the bound key's template (tests of refusals).
	BoundKey *tpm2.TPMTPublic
	// EKCertificates, if set, replace what the TPM's NV index holds (the EK
	// certificate, then any intermediates).
	EKCertificates [][]byte
}

// TCG NV indexes of the EK certificates (TCG EK Credential Profile).
const (
	nvRSAEKCert = 0x01C00002
	nvECCEKCert = 0x01C0000A
)

// New creates (deterministically, from the TPM's seeds) the EK of the
// given type and a fresh bound signing key under the storage root key.
func New(t transport.TPM, kt KeyType, opt Options) (*Device, error) {
	ekTemplate := tpm2.ECCEKTemplate
	if kt == RSA {
		ekTemplate = tpm2.RSAEKTemplate
	}
	ek, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(ekTemplate)}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("create EK: %w", err)
	}
	d := &Device{tpm: t, ek: tpm2.NamedHandle{Handle: ek.ObjectHandle, Name: ek.Name}, ekPub: tpm2.Marshal(ek.OutPublic)}
	srk, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.ECCSRKTemplate)}.Execute(t)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("create SRK: %w", err)
	}
	defer tpm2.FlushContext{FlushHandle: srk.ObjectHandle}.Execute(t)
	tmpl := BoundKeyTemplate
	if opt.BoundKey != nil {
		tmpl = *opt.BoundKey
	}
	parent := tpm2.NamedHandle{Handle: srk.ObjectHandle, Name: srk.Name}
	created, err := tpm2.Create{ParentHandle: parent, InPublic: tpm2.New2B(tmpl)}.Execute(t)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("create bound key: %w", err)
	}
	loaded, err := tpm2.Load{ParentHandle: parent, InPrivate: created.OutPrivate, InPublic: created.OutPublic}.Execute(t)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("load bound key: %w", err)
	}
	d.key = tpm2.NamedHandle{Handle: loaded.ObjectHandle, Name: loaded.Name}
	d.boundPub = tpm2.Marshal(created.OutPublic)
	d.ekCerts = opt.EKCertificates
	if d.ekCerts == nil {
		index := tpm2.TPMHandle(nvECCEKCert)
		if kt == RSA {
			index = nvRSAEKCert
		}
		if cert, err := readNV(t, index); err == nil && len(cert) > 0 {
			d.ekCerts = [][]byte{cert}
		}
	}
	return d, nil
}

// readNV reads a whole NV index with owner authorization (how EK
// certificates are read), in chunks.
func readNV(t transport.TPM, index tpm2.TPMHandle) ([]byte, error) {
	pub, err := tpm2.NVReadPublic{NVIndex: index}.Execute(t)
	if err != nil {
		return nil, err
	}
	contents, err := pub.NVPublic.Contents()
	if err != nil {
		return nil, err
	}
	size := int(contents.DataSize)
	if size > 8<<10 {
		return nil, fmt.Errorf("NV index %#x holds %d bytes", uint32(index), size)
	}
	var out []byte
	for len(out) < size {
		n := min(size-len(out), 512)
		rsp, err := tpm2.NVRead{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: index, Name: pub.NVName},
			Size:       uint16(n), Offset: uint16(len(out)),
		}.Execute(t)
		if err != nil {
			return nil, err
		}
		out = append(out, rsp.Data.Buffer...)
	}
	return out, nil
}

// EKCertificates is the EK certificate (and any intermediates) the device
// presents for group enrollment, or nil when the TPM holds none.
func (d *Device) EKCertificates() [][]byte { return d.ekCerts }

// EKPublic is the EK as TPM2B_PUBLIC.
func (d *Device) EKPublic() []byte { return d.ekPub }

// BoundKeyPublic is the bound key as TPM2B_PUBLIC.
func (d *Device) BoundKeyPublic() []byte { return d.boundPub }

// Activate recovers a credential's secret: only the TPM holding the EK,
// and holding a key with the name the credential is bound to, can.
func (d *Device) Activate(credentialBlob, encryptedSecret []byte) ([]byte, error) {
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: d.key,
		KeyHandle: tpm2.AuthHandle{Handle: d.ek.Handle, Name: d.ek.Name,
			Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(t transport.TPM, h tpm2.TPMISHPolicy, nonce tpm2.TPM2BNonce) error {
				_, err := tpm2.PolicySecret{AuthHandle: tpm2.TPMRHEndorsement, PolicySession: h, NonceTPM: nonce}.Execute(t)
				return err
			})},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: credentialBlob},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: encryptedSecret},
	}.Execute(d.tpm)
	if err != nil {
		return nil, fmt.Errorf("activate credential: %w", err)
	}
	return rsp.CertInfo.Buffer, nil
}

// Close flushes the device's keys from the TPM.
func (d *Device) Close() error {
	var errs []error
	for _, h := range []tpm2.NamedHandle{d.key, d.ek} {
		if h.Handle != 0 {
			_, err := tpm2.FlushContext{FlushHandle: h.Handle}.Execute(d.tpm)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
