package tpm_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"regexp"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/internal/fault"
)

func pemOf(t testing.TB, pub any) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// softwareEK builds an EK public area from a software key, as an operator
// uploading a vendor's PEM would.
func softwareEK(t testing.TB, rsaKey bool) []byte {
	var pub any
	if rsaKey {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		pub = &k.PublicKey
	} else {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub = &k.PublicKey
	}
	ek, err := tpm.EKFromPEM(pemOf(t, pub))
	if err != nil {
		t.Fatal(err)
	}
	return ek
}

// softwareBoundKey builds a bound-key public area around a software key.
func softwareBoundKey(t testing.TB) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := k.PublicKey.ECDH()
	b := raw.Bytes()
	pub := tpm2.TPMTPublic{Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, Restricted: true, SignEncrypt: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
			CurveID: tpm2.TPMECCNistP256}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{X: tpm2.TPM2BECCParameter{Buffer: b[1:33]}, Y: tpm2.TPM2BECCParameter{Buffer: b[33:]}})}
	return tpm.MarshalPublic(&pub)
}

func TestEKFromPEMAndChecks(t *testing.T) {
	for _, isRSA := range []bool{true, false} {
		ek := softwareEK(t, isRSA)
		pub, err := tpm.ParsePublic("ek", ek)
		if err != nil {
			t.Fatal(err)
		}
		if err := tpm.CheckEK(pub); err != nil {
			t.Fatalf("CheckEK: %v", err)
		}
		if !bytes.Equal(tpm.MarshalPublic(pub), ek) {
			t.Fatal("TPM2B_PUBLIC does not round-trip")
		}
		if id := tpm.RegistrationID(ek); !regexp.MustCompile(`^[a-z2-7]{52}$`).MatchString(id) {
			t.Fatalf("registration ID %q is not unpadded lowercase base32 of SHA-256", id)
		}
		// The EK is not a bound key, and the bound key is not an EK.
		if err := tpm.CheckBoundKey(pub); fault.ReasonOf(err) != fault.TPMKeyAttributesInvalid {
			t.Fatalf("EK as bound key: %v", err)
		}
	}
	bk, err := tpm.ParsePublic("bk", softwareBoundKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tpm.CheckBoundKey(bk); err != nil {
		t.Fatalf("CheckBoundKey: %v", err)
	}
	if err := tpm.CheckEK(bk); fault.ReasonOf(err) != fault.TPMKeyAttributesInvalid {
		t.Fatalf("bound key as EK: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	for name, text := range map[string]string{
		"P-384":    pemOf(t, &p384.PublicKey),
		"RSA-1024": pemOf(t, &rsa1024.PublicKey),
		"garbage":  "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		"empty":    "",
	} {
		if _, err := tpm.EKFromPEM(text); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMakeCredentialAndSecret(t *testing.T) {
	for _, isRSA := range []bool{true, false} {
		ek, _ := tpm.ParsePublic("ek", softwareEK(t, isRSA))
		bk, _ := tpm.ParsePublic("bk", softwareBoundKey(t))
		name, err := tpm.Name(bk)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tpm.MakeCredential(rand.Reader, ek, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.CredentialBlob) == 0 || len(c.EncryptedSecret) == 0 || len(c.SecretHash) != 32 {
			t.Fatalf("challenge = %+v", c)
		}
		if err := tpm.CheckSecret(c.SecretHash, make([]byte, tpm.SecretSize)); fault.ReasonOf(err) != fault.TPMChallengeFailed {
			t.Fatalf("wrong secret: %v", err)
		}
		if err := tpm.CheckSecret(c.SecretHash, nil); fault.ReasonOf(err) != fault.TPMChallengeFailed {
			t.Fatalf("empty secret: %v", err)
		}
	}
}

func FuzzParsePublic(f *testing.F) {
	f.Add(softwareEK(f, true))
	f.Add(softwareEK(f, false))
	f.Add(softwareBoundKey(f))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, err := tpm.ParsePublic("fuzz", b)
		if err != nil {
			if fault.KindOf(err) != fault.InvalidArgument {
				t.Fatalf("unclassified: %v", err)
			}
			return
		}
		// Accepted input is exactly the canonical encoding of what was parsed.
		if !bytes.Equal(tpm.MarshalPublic(pub), b) {
			t.Fatal("accepted a non-canonical TPM2B_PUBLIC")
		}
		for _, err := range []error{tpm.CheckEK(pub), tpm.CheckBoundKey(pub)} {
			if err != nil && fault.KindOf(err) != fault.InvalidArgument {
				t.Fatalf("unclassified check error: %v", err)
			}
		}
		if name, err := tpm.Name(pub); err == nil && len(name) == 0 {
			t.Fatal("empty name")
		}
	})
}

func FuzzEKFromPEM(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add(pemOf(f, &k.PublicKey))
	f.Add("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n")
	f.Fuzz(func(t *testing.T, text string) {
		ek, err := tpm.EKFromPEM(text)
		if err != nil {
			return
		}
		pub, err := tpm.ParsePublic("ek", ek)
		if err != nil {
			t.Fatalf("EKFromPEM made an unparsable EK: %v", err)
		}
		if err := tpm.CheckEK(pub); err != nil {
			t.Fatalf("EKFromPEM made an EK that fails CheckEK: %v", err)
		}
	})
}

func BenchmarkMakeCredential(b *testing.B) {
	for _, tc := range []struct {
		name  string
		isRSA bool
	}{{"RSA", true}, {"ECC", false}} {
		b.Run(tc.name, func(b *testing.B) {
			ekBytes, bkBytes := softwareEK(b, tc.isRSA), softwareBoundKey(b)
			for b.Loop() {
				// What the first step does with device input: parse, check,
				// name, challenge.
				ek, err := tpm.ParsePublic("ek", ekBytes)
				if err != nil {
					b.Fatal(err)
				}
				if err := tpm.CheckEK(ek); err != nil {
					b.Fatal(err)
				}
				bk, _ := tpm.ParsePublic("bk", bkBytes)
				if err := tpm.CheckBoundKey(bk); err != nil {
					b.Fatal(err)
				}
				name, _ := tpm.Name(bk)
				if _, err := tpm.MakeCredential(rand.Reader, ek, name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
