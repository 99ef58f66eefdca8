package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/zerotouch/zerotouch/attestation/tpm"
	pb "github.com/zerotouch/zerotouch/proto/zerotouch/v1"
)

// TPMDevice is what the TPM registration flow needs of a device.
type TPMDevice interface {
	EKPublic() []byte
	EKCertificates() [][]byte
	BoundKeyPublic() []byte
	Activate(credentialBlob, encryptedSecret []byte) ([]byte, error)
}

// RegisterTPMGRPC runs the two TPM steps over gRPC. An empty regID is
// derived from the EK by the service.
func RegisterTPMGRPC(ctx context.Context, c pb.DeviceRegistrationServiceClient, d TPMDevice, regID string) (*pb.RegisterResponse, error) {
	return registerTPMGRPC(ctx, c, d, regID, nil)
}

// makeCSR makes the CSR a registration sends, for its registration ID.
type makeCSR func(regID string) ([]byte, error)

func registerTPMGRPC(ctx context.Context, c pb.DeviceRegistrationServiceClient, d TPMDevice, regID string, csrFor makeCSR) (*pb.RegisterResponse, error) {
	ch, err := c.BeginTpmAttestation(ctx, &pb.BeginTpmAttestationRequest{RegistrationId: regID, EndorsementKey: d.EKPublic(),
		BoundKey: d.BoundKeyPublic(), EndorsementKeyCertificates: d.EKCertificates()})
	if err != nil {
		return nil, err
	}
	secret, err := d.Activate(ch.GetCredentialBlob(), ch.GetEncryptedSecret())
	if err != nil {
		return nil, err
	}
	var csr []byte
	if csrFor != nil {
		if csr, err = csrFor(ch.GetRegistrationId()); err != nil {
			return nil, err
		}
	}
	return c.CompleteTpmAttestation(ctx, &pb.CompleteTpmAttestationRequest{RegistrationId: ch.GetRegistrationId(), ChallengeId: ch.GetChallengeId(), Secret: secret, Csr: csr})
}

// RegisterTPMREST runs the two TPM steps over REST (each step may reach a
// different replica). An empty regID is derived from the EK here, since
// the REST path names it.
func RegisterTPMREST(ctx context.Context, client *http.Client, server string, d TPMDevice, regID string) (*pb.RegisterResponse, error) {
	return registerTPMREST(ctx, client, server, d, regID, nil)
}

func registerTPMREST(ctx context.Context, client *http.Client, server string, d TPMDevice, regID string, csrFor makeCSR) (*pb.RegisterResponse, error) {
	if regID == "" {
		regID = tpm.RegistrationID(d.EKPublic())
	}
	base := "https://" + server + "/v1/registrations/" + url.PathEscape(regID)
	ch := &pb.BeginTpmAttestationResponse{}
	if err := postJSON(ctx, client, base+":beginTpmAttestation",
		&pb.BeginTpmAttestationRequest{EndorsementKey: d.EKPublic(), BoundKey: d.BoundKeyPublic(), EndorsementKeyCertificates: d.EKCertificates()}, ch); err != nil {
		return nil, err
	}
	secret, err := d.Activate(ch.GetCredentialBlob(), ch.GetEncryptedSecret())
	if err != nil {
		return nil, err
	}
	var csr []byte
	if csrFor != nil {
		if csr, err = csrFor(regID); err != nil {
			return nil, err
		}
	}
	out := &pb.RegisterResponse{}
	if err := postJSON(ctx, client, base+":completeTpmAttestation",
		&pb.CompleteTpmAttestationRequest{ChallengeId: ch.GetChallengeId(), Secret: secret, Csr: csr}, out); err != nil {
		return nil, err
	}
	return out, nil
}

func postJSON(ctx context.Context, client *http.Client, u string, in, out proto.Message) error {
	body, err := protojson.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return &RESTError{StatusCode: res.StatusCode, Body: string(raw)}
	}
	if err := protojson.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}
