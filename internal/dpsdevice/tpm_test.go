package dpsdevice

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"testing"
	"time"

	"github.com/zerotouch/zerotouch/attestation/symkey"
	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
)

// softwareKey is a restricted decryption key as TPM2B_PUBLIC (the EK
// template, which also does as a storage root key), made without a TPM.
func softwareKey(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pub, err := tpm.EKFromPEM(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestTPMTwoSteps runs DPS's TPM flow with DPS's shapes: the first PUT is
// answered 401 with the authenticationKey that delivers a key into the
// TPM; the second, with a SAS signed by that key, registers and delivers
// the hub key. A SAS answers once.
func TestTPMTwoSteps(t *testing.T) {
	f := newFixture(t)
	ek, srk := softwareKey(t), softwareKey(t)
	if _, err := f.adm.CreateTPMIndividual(t.Context(), &enrollment.Individual{RegistrationID: "tpm-1",
		Allocation: enrollment.Allocation{Policy: enrollment.PolicyHashed}}, ek, ""); err != nil {
		t.Fatal(err)
	}
	path := "/" + scope + "/registrations/tpm-1/register"
	body := func(ek, srk []byte) string {
		raw, _ := json.Marshal(map[string]any{"tpm": map[string]string{
			"endorsementKey": base64.StdEncoding.EncodeToString(ek), "storageRootKey": base64.StdEncoding.EncodeToString(srk)}})
		return string(raw)
	}
	// challenge runs the first step and returns the delivered key (here
	// from the service instead of a TPM that imports it).
	challenge := func() []byte {
		t.Helper()
		ch := decode[map[string]string](t, f.do(request{method: "PUT", path: path, body: body(ek, srk)}), 401)
		blob, err := base64.StdEncoding.DecodeString(ch["authenticationKey"])
		if err != nil || len(blob) == 0 || ch["keyName"] != "registration" || len(ch) != 2 {
			t.Fatalf("first step: %v", ch)
		}
		return f.prov.DPSDeliveredKey(ek, srk, "tpm-1", time.Now())
	}
	sign := func(key []byte) string {
		return symkey.Sign(key, scope+"/registrations/tpm-1", time.Now().Add(time.Hour), "registration")
	}

	// A SAS not signed by the delivered key is refused; so is the key
	// with another SRK than the first step's, a key of an expired window,
	// and the key of another registration ID.
	key := challenge()
	refused(t, f.do(request{method: "PUT", path: path, body: body(ek, srk), auth: sign(make([]byte, 32))}), 401, fault.TPMChallengeFailed)
	refused(t, f.do(request{method: "PUT", path: path, body: body(ek, softwareKey(t)), auth: sign(key)}), 401, fault.TPMChallengeFailed)
	old := f.prov.DPSDeliveredKey(ek, srk, "tpm-1", time.Now().Add(-11*time.Minute))
	refused(t, f.do(request{method: "PUT", path: path, body: body(ek, srk), auth: sign(old)}), 401, fault.TPMChallengeExpired)
	refused(t, f.do(request{method: "PUT", path: path, body: body(ek, srk), auth: sign(f.prov.DPSDeliveredKey(ek, srk, "tpm-2", time.Now()))}), 401, fault.TPMChallengeFailed)
	if f.registered("tpm-1") {
		t.Fatal("a failed answer registered the device")
	}
	// First steps by anyone who knows the EK and SRK (both public) store
	// nothing and change nothing: the device's key still answers.
	for range 10 {
		challenge()
	}
	if n := f.st.ChallengeCount(); n != 0 {
		t.Fatalf("%d challenges stored by first steps", n)
	}
	auth := sign(key)
	op := decode[OperationStatus](t, f.do(request{method: "PUT", path: path, body: body(ek, srk), auth: auth}), 200)
	st := op.RegistrationState
	if op.Status != "assigned" || st.TPM == nil || st.TPM.AuthenticationKey == "" || st.X509 != nil || st.SymmetricKey != nil || st.DeviceID != "tpm-1" {
		t.Fatalf("second step: %+v %+v", op, st)
	}
	reg, err := f.st.GetRegistration(t.Context(), "tpm-1")
	if err != nil || reg.AttestationType != registry.TPM || reg.CredentialThumbprint != tpm.EKHash(ek) {
		t.Fatalf("registration %+v %v", reg, err)
	}
	// Replayed: a SAS answers once.
	refused(t, f.do(request{method: "PUT", path: path, body: body(ek, srk), auth: auth}), 401, fault.TPMChallengeFailed)

	// An EK nobody enrolled gets no challenge, under a free registration
	// ID or an enrolled one (the answer does not tell which); a bad SRK
	// is malformed.
	stranger := softwareKey(t)
	refused(t, f.do(request{method: "PUT", path: "/" + scope + "/registrations/tpm-2/register", body: body(stranger, srk)}), 401, fault.TPMEKUnknown)
	refused(t, f.do(request{method: "PUT", path: path, body: body(stranger, srk)}), 401, fault.TPMEKUnknown)
	refused(t, f.do(request{method: "PUT", path: path, body: body(ek, []byte{0, 1, 2})}), 400, fault.TPMStructureInvalid)
	refused(t, f.do(request{method: "PUT", path: path, body: body(ek, srk), auth: "SharedAccessSignature x"}), 401, fault.SASInvalid)
	// A disabled enrollment: the answer is DPS's disabled operation.
	e, _ := f.st.GetIndividual(t.Context(), "tpm-1")
	e.Disabled = true
	if _, err := f.adm.UpdateIndividual(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	key = challenge()
	fresh := symkey.Sign(key, scope+"/registrations/tpm-1", time.Now().Add(2*time.Hour), "registration") // another SAS
	if op := decode[OperationStatus](t, f.do(request{method: "PUT", path: path, body: body(ek, srk), auth: fresh}), 200); op.Status != "disabled" {
		t.Fatalf("disabled TPM enrollment: %+v", op)
	}
}
