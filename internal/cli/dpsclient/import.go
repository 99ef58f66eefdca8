package dpsclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/zerotouch/zerotouch/internal/dpsservice"
)

// ImportResult is what happened to one enrollment or group.
type ImportResult struct {
	Kind string // "enrollment group" or "enrollment"
	ID   string
	// Notes are what was not carried over (secondary certificates).
	Notes []string
	Err   error
}

// copied are the fields an import carries over; read-only ones (etag,
// timestamps, registrationState) and unknown ones are left behind.
var copied = []string{"registrationId", "enrollmentGroupId", "deviceId", "capabilities", "iotHubHostName", "initialTwin",
	"provisioningStatus", "reprovisionPolicy", "allocationPolicy", "iotHubs", "customAllocationDefinition"}

// Import copies every enrollment group and individual enrollment from one
// DPS service API (Azure DPS) to another (Zerotouch), reporting each item
// as it goes. Symmetric keys are fetched with the attestation mechanism
// call, so devices keep their keys; X.509 individual enrollments carry the
// certificate's SHA-256 thumbprint; X.509 groups name their CA, which must
// already be uploaded and verified on the target. Registration states are
// not copied: devices register again. Writes are upserts, so a re-run is
// safe. It returns an error only when a source listing fails.
func Import(ctx context.Context, from, to *Client, report func(ImportResult)) error {
	for _, kind := range []struct{ path, name, idField string }{
		{"/enrollmentGroups", "enrollment group", "enrollmentGroupId"},
		{"/enrollments", "enrollment", "registrationId"},
	} {
		token := ""
		for {
			hdr := []string{"x-ms-max-item-count", "100"}
			if token != "" {
				hdr = append(hdr, "x-ms-continuation", token)
			}
			var items []map[string]json.RawMessage
			h, err := from.Do(ctx, "POST", kind.path+"/query", map[string]string{"query": "SELECT * FROM " + kind.path[1:]}, &items, hdr...)
			if err != nil {
				return fmt.Errorf("list the source's %ss: %w", kind.name, err)
			}
			for _, item := range items {
				report(importOne(ctx, from, to, kind.path, kind.name, kind.idField, item))
			}
			if token = h.Get("x-ms-continuation"); token == "" {
				break
			}
		}
	}
	return nil
}

func importOne(ctx context.Context, from, to *Client, path, kind, idField string, item map[string]json.RawMessage) ImportResult {
	res := ImportResult{Kind: kind}
	if err := json.Unmarshal(item[idField], &res.ID); err != nil || res.ID == "" {
		res.Err = fmt.Errorf("the source's item has no %s", idField)
		return res
	}
	out := map[string]json.RawMessage{}
	for _, f := range copied {
		if v, ok := item[f]; ok {
			out[f] = v
		}
	}
	var att dpsservice.AttestationMechanism
	if err := json.Unmarshal(item["attestation"], &att); err != nil {
		res.Err = fmt.Errorf("the source's attestation is unreadable: %w", err)
		return res
	}
	clean := dpsservice.AttestationMechanism{Type: att.Type}
	switch att.Type {
	case "symmetricKey":
		var keys dpsservice.AttestationMechanism
		if _, err := from.Do(ctx, "POST", path+"/"+url.PathEscape(res.ID)+"/attestationmechanism", nil, &keys); err != nil {
			res.Err = fmt.Errorf("read the keys: %w", err)
			return res
		}
		clean.SymmetricKey = keys.SymmetricKey
	case "tpm":
		if att.TPM != nil {
			clean.TPM = &dpsservice.TPMAttestation{EndorsementKey: att.TPM.EndorsementKey}
		}
	case "x509":
		if x := att.X509; x != nil {
			clean.X509 = &dpsservice.X509Attestation{}
			pick := func(field string, certs *dpsservice.X509Certificates) *dpsservice.X509Certificates {
				if certs == nil || certs.Primary == nil {
					return nil
				}
				if certs.Secondary != nil {
					res.Notes = append(res.Notes, "the secondary "+field+" certificate was not imported")
				}
				p := &dpsservice.X509CertificateWithInfo{Certificate: certs.Primary.Certificate}
				if certs.Primary.Certificate == "" && certs.Primary.Info != nil {
					p.Info = &dpsservice.X509CertificateInfo{SHA256Thumbprint: certs.Primary.Info.SHA256Thumbprint}
				}
				return &dpsservice.X509Certificates{Primary: p}
			}
			clean.X509.ClientCertificates = pick("client", x.ClientCertificates)
			clean.X509.SigningCertificates = pick("signing", x.SigningCertificates)
			if r := x.CAReferences; r != nil {
				if r.Secondary != "" {
					res.Notes = append(res.Notes, "the secondary CA reference was not imported")
				}
				clean.X509.CAReferences = &dpsservice.X509CAReferences{Primary: r.Primary}
			}
		}
	}
	raw, err := json.Marshal(clean)
	if err != nil {
		res.Err = err
		return res
	}
	out["attestation"] = raw
	_, res.Err = to.Do(ctx, "PUT", path+"/"+url.PathEscape(res.ID), out, nil)
	return res
}
