package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// softwareEK is an EK public area around a fresh software P-256 key, as a
// factory's EK list holds them.
func softwareEK(t *testing.T) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	ek, err := tpm.EKFromPEM(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})))
	if err != nil {
		t.Fatal(err)
	}
	return ek
}

// TestBatchCreateEnrollments uploads a factory's 1,000 EKs in one call,
// with a few bad items among them, and gets a result per item.
func TestBatchCreateEnrollments(t *testing.T) {
	e := start(t)
	enr := pb.NewEnrollmentServiceClient(e.admin)
	var items []*pb.Enrollment
	var eks [][]byte
	for i := range 997 {
		ek := softwareEK(t)
		eks = append(eks, ek)
		id := ""
		if i%2 == 0 {
			id = fmt.Sprintf("factory-%04d", i)
		}
		items = append(items, &pb.Enrollment{RegistrationId: id, Tpm: &pb.TpmAttestation{EndorsementKey: ek}})
	}
	items = append(items,
		&pb.Enrollment{RegistrationId: "bad-ek", Tpm: &pb.TpmAttestation{EndorsementKey: []byte{0, 1, 7}}},
		&pb.Enrollment{RegistrationId: "dup-ek", Tpm: &pb.TpmAttestation{EndorsementKey: eks[5]}},
		&pb.Enrollment{RegistrationId: "bad id!", Tpm: &pb.TpmAttestation{EndorsementKey: softwareEK(t)}},
	)
	resp, err := enr.BatchCreateEnrollments(e.owner(), &pb.BatchCreateEnrollmentsRequest{Enrollments: items})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetCreated() != 997 || resp.GetFailed() != 3 || len(resp.GetResults()) != 1000 {
		t.Fatalf("created %d, failed %d, %d results", resp.GetCreated(), resp.GetFailed(), len(resp.GetResults()))
	}
	for i, want := range map[int]string{997: "TPM_STRUCTURE_INVALID", 998: "RESOURCE_ALREADY_EXISTS", 999: "REGISTRATION_ID_INVALID"} {
		if got := resp.GetResults()[i].GetError().GetReason(); got != want {
			t.Errorf("item %d: %s, want %s", i, got, want)
		}
	}
	if r := resp.GetResults()[1]; r.GetEnrollment().GetRegistrationId() != tpm.RegistrationID(eks[1]) || r.GetError() != nil {
		t.Errorf("item 1 (derived ID): %v", r)
	}
	if _, err := e.store.GetIndividual(t.Context(), "factory-0002"); err != nil {
		t.Errorf("item 2 not stored: %v", err)
	}
	if _, err := e.store.GetIndividual(t.Context(), "dup-ek"); err == nil {
		t.Error("the duplicate EK was stored")
	}

	// Limits: an empty batch and one over 1,000 are refused whole.
	if _, err := enr.BatchCreateEnrollments(e.owner(), &pb.BatchCreateEnrollmentsRequest{}); codeOf(err) != codes.InvalidArgument {
		t.Errorf("empty batch: %v", err)
	}
	big := make([]*pb.Enrollment, 1001)
	for i := range big {
		big[i] = &pb.Enrollment{RegistrationId: fmt.Sprintf("x-%d", i), Sha256Thumbprint: strings.Repeat("a", 64)}
	}
	if _, err := enr.BatchCreateEnrollments(e.owner(), &pb.BatchCreateEnrollmentsRequest{Enrollments: big}); codeOf(err) != codes.InvalidArgument {
		t.Errorf("batch of 1,001: %v", err)
	}
	if _, err := enr.BatchCreateEnrollments(as(t.Context(), e.readerKey), &pb.BatchCreateEnrollmentsRequest{Enrollments: items[:1]}); codeOf(err) != codes.PermissionDenied {
		t.Errorf("reader key: %v", err)
	}

	// Over REST, base64 in JSON.
	body, _ := protojson.Marshal(&pb.BatchCreateEnrollmentsRequest{Enrollments: []*pb.Enrollment{
		{RegistrationId: "rest-1", Tpm: &pb.TpmAttestation{EndorsementKey: softwareEK(t)}}}})
	req, _ := http.NewRequest(http.MethodPost, "https://"+e.httpAddr+"/v1/enrollments:batchCreate", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+e.ownerKey)
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{TLSClientConfig: e.clientTLS(nil)}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("REST batch: %s", res.Status)
	}
	if _, err := e.store.GetIndividual(t.Context(), "rest-1"); err != nil {
		t.Fatalf("REST item not stored: %v", err)
	}
}
