package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/internal/pki"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// ekCertificate mints an EK certificate for the EK as a TPM vendor does:
// empty subject, the TPM directoryName SAN marked critical, EKU
// tcg-kp-EKCertificate.
func ekCertificate(t *testing.T, ekPublic []byte, issuer *pki.Issued, notAfter time.Time) []byte {
	t.Helper()
	ek, err := tpm.ParsePublic("ek", ekPublic)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := tpm.PublicKey(ek)
	if err != nil {
		t.Fatal(err)
	}
	attrs, _ := asn1.Marshal(pkix.RDNSequence{{
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 1}, Value: "id:54455354"},
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 2}, Value: "zerotouch-test"},
		{Type: asn1.ObjectIdentifier{2, 23, 133, 2, 3}, Value: "id:00010000"},
	}})
	san, _ := asn1.Marshal([]asn1.RawValue{{Class: 2, Tag: 4, IsCompound: true, Bytes: attrs}})
	tmpl := &x509.Certificate{NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageKeyEncipherment,
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{{2, 23, 133, 8, 1}},
		ExtraExtensions:    []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Critical: true, Value: san}}}
	cert, err := pki.IssueFor(tmpl, pub, issuer)
	if err != nil {
		t.Fatal(err)
	}
	return cert.Cert.Raw
}

// TestTPMGroup registers TPMs whose EK certificate chains to a vendor CA
// (through an intermediate the operator uploaded, not the device), and
// checks the group's refusals.
func TestTPMGroup(t *testing.T) {
	e := start(t)
	e.createShard("shard-a", 1)
	now := time.Now()
	vendor, _ := pki.NewCA("TPM Vendor Root", nil, now, 48*time.Hour)
	issuing, _ := pki.NewCA("TPM Vendor EK Issuing", vendor, now, 48*time.Hour)
	e.uploadCA("tpm-vendor", vendor, false) // vendors give no proof of possession
	e.uploadCA("tpm-vendor-issuing", issuing, false)
	enr := pb.NewEnrollmentServiceClient(e.admin)
	_, err := enr.CreateEnrollmentGroup(e.owner(), &pb.CreateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{
		Id: "tpm-fleet", CaCertificate: "tpm-vendor", AttestationType: pb.AttestationType_ATTESTATION_TYPE_TPM}})
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := pki.NewCA("Other Vendor", nil, now, time.Hour)

	for _, kt := range []tpmdevice.KeyType{tpmdevice.RSA, tpmdevice.ECC} {
		t.Run("register/"+string(kt), func(t *testing.T) {
			var ekPub []byte
			withTPM(t, kt, tpmdevice.Options{}, func(d *tpmdevice.Device) { ekPub = d.EKPublic() })
			tpmSeed.Add(-1) // the same simulated TPM again, now with its certificate
			withTPM(t, kt, tpmdevice.Options{EKCertificates: [][]byte{ekCertificate(t, ekPub, issuing, now.Add(time.Hour))}}, func(d *tpmdevice.Device) {
				reg, err := e.tpmREST(d, "")
				if err != nil {
					t.Fatalf("register: %v", err)
				}
				if reg.GetEnrollmentGroupId() != "tpm-fleet" || reg.GetIndividualEnrollment() || reg.GetRegistrationId() != tpm.RegistrationID(d.EKPublic()) ||
					reg.GetAttestationType() != pb.AttestationType_ATTESTATION_TYPE_TPM {
					t.Fatalf("registration = %v", reg)
				}
			})
		})
	}

	refuse := func(name, reason string, certFor func(ek []byte) [][]byte, before func(ekHash string)) {
		t.Run(name, func(t *testing.T) {
			var ekPub []byte
			withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) { ekPub = d.EKPublic() })
			tpmSeed.Add(-1)
			if before != nil {
				before(tpm.EKHash(ekPub))
			}
			withTPM(t, tpmdevice.ECC, tpmdevice.Options{EKCertificates: certFor(ekPub)}, func(d *tpmdevice.Device) {
				_, err := e.tpmGRPC(d, "")
				if got := reasonOf(t, err); got != reason {
					t.Fatalf("%s (%v), want %s", got, err, reason)
				}
				e.assertNoRegistration(tpm.RegistrationID(d.EKPublic()))
			})
		})
	}
	refuse("NoCertificate", "TPM_EK_UNKNOWN", func([]byte) [][]byte { return [][]byte{} }, nil)
	refuse("UnknownVendor", "TPM_EK_UNKNOWN", func(ek []byte) [][]byte {
		return [][]byte{ekCertificate(t, ek, stranger, now.Add(time.Hour))}
	}, nil)
	refuse("CertificateForAnotherKey", "TPM_EK_CERTIFICATE_INVALID", func([]byte) [][]byte {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		other, err := tpm.EKFromPEM(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})))
		if err != nil {
			t.Fatal(err)
		}
		return [][]byte{ekCertificate(t, other, issuing, now.Add(time.Hour))}
	}, nil)
	refuse("ExpiredCertificate", "TPM_EK_CERTIFICATE_INVALID", func(ek []byte) [][]byte {
		return [][]byte{ekCertificate(t, ek, issuing, now.Add(-time.Minute))}
	}, nil)
	refuse("NotOnAllowList", "TPM_EK_UNKNOWN", func(ek []byte) [][]byte {
		return [][]byte{ekCertificate(t, ek, issuing, now.Add(time.Hour))}
	}, func(string) {
		g, _ := enr.GetEnrollmentGroup(e.owner(), &pb.GetEnrollmentGroupRequest{Id: "tpm-fleet"})
		if _, err := enr.UpdateEnrollmentGroup(e.owner(), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{
			Id: "tpm-fleet", Etag: g.GetEtag(), TpmEkAllowList: []string{tpm.EKHash([]byte("someone else"))}},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"tpm_ek_allow_list"}}}); err != nil {
			t.Fatal(err)
		}
	})
	// On the allow-list it registers; with the group disabled it does not.
	t.Run("AllowListAndDisable", func(t *testing.T) {
		var ekPub []byte
		withTPM(t, tpmdevice.ECC, tpmdevice.Options{}, func(d *tpmdevice.Device) { ekPub = d.EKPublic() })
		tpmSeed.Add(-1)
		g, _ := enr.GetEnrollmentGroup(e.owner(), &pb.GetEnrollmentGroupRequest{Id: "tpm-fleet"})
		g, err := enr.UpdateEnrollmentGroup(e.owner(), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{
			Id: "tpm-fleet", Etag: g.GetEtag(), TpmEkAllowList: []string{tpm.EKHash(ekPub)}},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"tpm_ek_allow_list"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := enr.UpdateEnrollmentGroup(e.owner(), &pb.UpdateEnrollmentGroupRequest{EnrollmentGroup: &pb.EnrollmentGroup{
			Id: "tpm-fleet", Etag: g.GetEtag(), ProvisioningStatus: pb.ProvisioningStatus_PROVISIONING_STATUS_DISABLED},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"provisioning_status"}}}); err != nil {
			t.Fatal(err)
		}
		withTPM(t, tpmdevice.ECC, tpmdevice.Options{EKCertificates: [][]byte{ekCertificate(t, ekPub, issuing, now.Add(time.Hour))}}, func(d *tpmdevice.Device) {
			_, err := e.tpmGRPC(d, "")
			if got := reasonOf(t, err); got != "ENROLLMENT_DISABLED" {
				t.Fatalf("disabled group: %s (%v)", got, err)
			}
			e.assertNoRegistration(tpm.RegistrationID(d.EKPublic()))
		})
	})
	// An X.509 device whose certificate chains to the TPM vendor CA is not
	// admitted by the TPM group.
	dev, _ := pki.NewDevice("x509-under-tpm-ca", issuing, now, time.Hour)
	if _, err := e.registerGRPC("x509-under-tpm-ca", dev, issuing.Cert); reasonOf(t, err) != "ENROLLMENT_NOT_FOUND" {
		t.Fatalf("X.509 device under a TPM group's CA: %v", err)
	}
}
