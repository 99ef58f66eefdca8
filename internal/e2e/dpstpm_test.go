package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	tpmtransport "github.com/google/go-tpm/tpm2/transport"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	"github.com/zerotouch/zerotouch/internal/tpmdevice"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// azureTPM does in a simulated TPM what the Azure device SDK does with an
// authenticationKey: activate, import under the SRK, load.
type azureTPM struct {
	t   *testing.T
	tp  tpmtransport.TPMCloser
	ek  *tpm2.CreatePrimaryResponse
	srk *tpm2.CreatePrimaryResponse
}

func newAzureTPM(t *testing.T) *azureTPM {
	tp, err := tpmdevice.Open("simulator", 5000+tpmSeed.Add(1))
	if err != nil {
		t.Fatal(err)
	}
	a := &azureTPM{t: t, tp: tp}
	if a.ek, err = (tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(tpm2.RSAEKTemplate)}).Execute(tp); err != nil {
		t.Fatal(err)
	}
	if a.srk, err = (tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.RSASRKTemplate)}).Execute(tp); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *azureTPM) close() {
	tpm2.FlushContext{FlushHandle: a.ek.ObjectHandle}.Execute(a.tp)
	tpm2.FlushContext{FlushHandle: a.srk.ObjectHandle}.Execute(a.tp)
	a.tp.Close()
}

func (a *azureTPM) ekPub() []byte  { return tpm2.Marshal(a.ek.OutPublic) }
func (a *azureTPM) srkPub() []byte { return tpm2.Marshal(a.srk.OutPublic) }

// importKey imports the blob's HMAC key and returns a function that HMACs
// in the TPM.
func (a *azureTPM) importKey(blobB64 string) func(msg string) []byte {
	t := a.t
	blob, err := base64.StdEncoding.DecodeString(blobB64)
	if err != nil {
		t.Fatal(err)
	}
	var f [][]byte
	for len(blob) >= 2 {
		n := int(binary.BigEndian.Uint16(blob))
		f, blob = append(f, blob[2:2+n]), blob[2+n:]
	}
	srk := tpm2.NamedHandle{Handle: a.srk.ObjectHandle, Name: a.srk.Name}
	act, err := tpm2.ActivateCredential{ActivateHandle: srk,
		KeyHandle: tpm2.AuthHandle{Handle: a.ek.ObjectHandle, Name: a.ek.Name,
			Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(tp tpmtransport.TPM, h tpm2.TPMISHPolicy, nonce tpm2.TPM2BNonce) error {
				_, err := tpm2.PolicySecret{AuthHandle: tpm2.TPMRHEndorsement, PolicySession: h, NonceTPM: nonce}.Execute(tp)
				return err
			})},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: f[0]}, Secret: tpm2.TPM2BEncryptedSecret{Buffer: f[1]}}.Execute(a.tp)
	if err != nil {
		t.Fatalf("ActivateCredential: %v", err)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](f[4])
	if err != nil {
		t.Fatal(err)
	}
	imp, err := tpm2.Import{ParentHandle: srk, EncryptionKey: tpm2.TPM2BData{Buffer: act.CertInfo.Buffer}, ObjectPublic: tpm2.New2B(*pub),
		Duplicate: tpm2.TPM2BPrivate{Buffer: f[2]}, InSymSeed: tpm2.TPM2BEncryptedSecret{Buffer: f[3]},
		Symmetric: tpm2.TPMTSymDef{Algorithm: tpm2.TPMAlgAES, KeyBits: tpm2.NewTPMUSymKeyBits(tpm2.TPMAlgAES, tpm2.TPMKeyBits(128)),
			Mode: tpm2.NewTPMUSymMode(tpm2.TPMAlgAES, tpm2.TPMAlgCFB)}}.Execute(a.tp)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	loaded, err := tpm2.Load{ParentHandle: srk, InPrivate: imp.OutPrivate, InPublic: tpm2.New2B(*pub)}.Execute(a.tp)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return func(msg string) []byte {
		rsp, err := tpm2.Hmac{Handle: tpm2.AuthHandle{Handle: loaded.ObjectHandle, Name: loaded.Name, Auth: tpm2.PasswordAuth(nil)},
			Buffer: tpm2.TPM2BMaxBuffer{Buffer: []byte(msg)}, HashAlg: tpm2.TPMAlgSHA256}.Execute(a.tp)
		if err != nil {
			t.Fatalf("HMAC: %v", err)
		}
		tpm2.FlushContext{FlushHandle: loaded.ObjectHandle}.Execute(a.tp)
		return rsp.OutHMAC.Buffer
	}
}

// sasFromTPM signs as the Node TPM client does: sr URL-encoded, signed
// over the encoded form.
func sasFromTPM(sign func(string) []byte, regID string) string {
	sr := url.QueryEscape(idScope + "/registrations/" + regID)
	se := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(sign(sr + "\n" + se)))
	return "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&se=" + se + "&skn=registration"
}

// TestDPSTPM runs DPS's TPM flow with a simulated TPM doing what the Azure
// SDK does.
func TestDPSTPM(t *testing.T) {
	e := start(t)
	e.createShard("shard-a", 1)
	a := newAzureTPM(t)
	regID := tpm.RegistrationID(a.ekPub())
	e.enrollTPM(regID, a.ekPub(), 0)
	path := "/" + idScope + "/registrations/" + regID + "/register"
	body, _ := json.Marshal(map[string]any{"registrationId": regID, "tpm": map[string]string{
		"endorsementKey": base64.StdEncoding.EncodeToString(a.ekPub()), "storageRootKey": base64.StdEncoding.EncodeToString(a.srkPub())}})

	challenge := func() string {
		status, _, raw := e.dpsCall("PUT", path, "", string(body), nil)
		var ch struct {
			AuthenticationKey, KeyName string
		}
		if err := json.Unmarshal(raw, &ch); status != 401 || err != nil || ch.AuthenticationKey == "" || ch.KeyName != "registration" {
			t.Fatalf("first PUT: %d %s", status, raw)
		}
		return ch.AuthenticationKey
	}

	// A SAS not signed by the delivered key is refused, and spends the challenge.
	challenge()
	status, _, raw := e.dpsCall("PUT", path, sasFromTPM(func(m string) []byte {
		h := hmac.New(sha256.New, []byte("guess"))
		h.Write([]byte(m))
		return h.Sum(nil)
	}, regID), string(body), nil)
	if eb := decodeErr(t, raw); status != 401 || eb.Info["reason"] != "TPM_CHALLENGE_FAILED" {
		t.Fatalf("wrong key: %d %s", status, raw)
	}
	e.assertNoRegistration(regID)

	sign := a.importKey(challenge())
	token := sasFromTPM(sign, regID)
	status, _, raw = e.dpsCall("PUT", path, token, string(body), nil)
	op := decodeOp(t, raw)
	if status != 200 || op.Status != "assigned" || op.RegistrationState.TPM == nil || op.RegistrationState.TPM.AuthenticationKey == "" || op.RegistrationState.DeviceID != regID {
		t.Fatalf("second PUT: %d %s", status, raw)
	}
	// The hub key imports into the TPM too.
	a.importKey(op.RegistrationState.TPM.AuthenticationKey)
	reg, err := e.store.GetRegistration(t.Context(), regID)
	if err != nil || reg.AttestationType != "tpm" || reg.CredentialThumbprint != tpm.EKHash(a.ekPub()) {
		t.Fatalf("registration = %+v, %v", reg, err)
	}
	// Replaying the second request finds no challenge.
	status, _, raw = e.dpsCall("PUT", path, token, string(body), nil)
	if eb := decodeErr(t, raw); status != 401 || eb.Info["reason"] != "TPM_CHALLENGE_FAILED" {
		t.Fatalf("replay: %d %s", status, raw)
	}

	// An EK nobody enrolled gets no challenge. (One simulator per process:
	// the first TPM goes first.)
	a.close()
	b := newAzureTPM(t)
	defer b.close()
	other := tpm.RegistrationID(b.ekPub())
	body2, _ := json.Marshal(map[string]any{"registrationId": other, "tpm": map[string]string{
		"endorsementKey": base64.StdEncoding.EncodeToString(b.ekPub()), "storageRootKey": base64.StdEncoding.EncodeToString(b.srkPub())}})
	status, _, raw = e.dpsCall("PUT", "/"+idScope+"/registrations/"+other+"/register", "", string(body2), nil)
	if eb := decodeErr(t, raw); status != 401 || eb.Info["reason"] != "TPM_EK_UNKNOWN" {
		t.Fatalf("unenrolled EK: %d %s", status, raw)
	}
	_ = pb.AttestationType_ATTESTATION_TYPE_TPM
}
