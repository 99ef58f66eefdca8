package server

import (
	"context"
	"encoding/pem"
	"log/slog"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/ipfilter"
)

// The API's gRPC services are one type each, in their own files: device.go
// (DeviceRegistrationService), ca.go, enrollments.go, hubs.go (HubService),
// registrations.go, accesskeys.go and hubstream.go
// (HubAssignmentService). The management services embed base: each method
// authenticates its caller first, so the check holds whichever transport
// (gRPC, or REST through the in-process gateway) called it, and every read
// and write goes through admin.

// base is what the management services share: the operator use cases, the
// logger, and the caller checks.
type base struct {
	admin *admin.Service
	log   *slog.Logger
	// ipf finds a proxied client's address (nil: the peer's).
	ipf *ipfilter.Filter
}

// authorize authenticates the caller's access key and checks p; the
// context it returns names the key as the actor of the request's changes.
func (s *base) authorize(ctx context.Context, p access.Permission) (context.Context, error) {
	ctx, _, err := s.caller(ctx, p)
	return ctx, err
}

// caller authenticates the caller and checks p, returning its key and the
// context that names it as the actor of the request's changes.
func (s *base) caller(ctx context.Context, p access.Permission) (context.Context, *access.Key, error) {
	ctx, k, err := s.authenticate(ctx)
	if err != nil {
		return ctx, nil, err
	}
	return ctx, k, access.Require(k, p)
}

// authenticate is caller without a permission check: any valid key.
func (s *base) authenticate(ctx context.Context) (context.Context, *access.Key, error) {
	token, ok := strings.CutPrefix(firstMetadata(ctx, "authorization"), "Bearer ")
	if !ok {
		return ctx, nil, fault.New(fault.Unauthenticated, fault.UnauthenticatedR, "a valid access key is required (authorization: Bearer ztk...)")
	}
	k, err := s.admin.Authenticate(ctx, strings.TrimSpace(token))
	if err != nil {
		return ctx, nil, err
	}
	addr, _ := peerInfo(ctx)
	addr = s.ipf.ClientAddr(addr, func(k string) []string { return metadataValues(ctx, k) })
	ctx = admin.WithCaller(ctx, &admin.Caller{KeyID: k.ID, KeyName: k.Name, Key: k, Surface: string(transportOf(ctx)), Source: addr, RequestID: requestID(ctx)})
	return ctx, k, nil
}

// fail turns err into the status a management call answers. A refused
// change by an authenticated caller (a method that is not a read) is
// recorded in the audit log, unless its write already recorded it.
func (s *base) fail(ctx context.Context, err error) error {
	if m := methodName(ctx); m != "" && !isRead(m) {
		s.admin.Refused(ctx, m, "", err)
	}
	return toStatus(ctx, s.log, err, false)
}

// methodName is the gRPC method of the call (the REST gateway's calls
// carry it too): "CreateEnrollmentGroup", say.
func methodName(ctx context.Context) string {
	full, ok := grpc.Method(ctx)
	if !ok || full == "" {
		full, _ = runtime.RPCMethod(ctx)
	}
	return full[strings.LastIndex(full, "/")+1:]
}

// reads are the management methods that only read: their refusals are
// not operator changes. Named one by one, so that a new write (or a
// "Verify" that changes state, as VerifyCaCertificate does) is audited.
var reads = map[string]bool{
	"GetCaCertificate": true, "ListCaCertificates": true, "GetCrl": true, "ListClusterShards": true,
	"GetEnrollmentGroup": true, "ListEnrollmentGroups": true, "GetEnrollment": true, "ListEnrollments": true,
	"GetShard": true, "ListShards": true, "GetHubCluster": true, "ListHubClusters": true,
	"GetRegistration": true, "ListRegistrations": true, "ListAccessKeys": true, "GetCallerAccessKey": true,
	"ListAuditRecords": true, "VerifyAuditLog": true, "ListFailedAttempts": true, "SummarizeFailedAttempts": true,
	"GetIPFilter": true, "GetWebhookSecret": true,
	"GetIssuingCa": true, "ListIssuingCas": true, "GetCredentialPolicy": true, "ListCredentialPolicies": true, "ListRevocations": true,
	"WatchAssignments": true, "ListShardIdentities": true, "LookupIdentity": true,
}

// isRead reports whether a method only reads.
func isRead(method string) bool { return reads[method] }

// pemCertificate encodes a DER certificate as PEM.
func pemCertificate(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// maskPaths validates an update mask against the allowed paths; an empty
// mask means all of them. The etag and the resource's identifier may appear
// (the REST gateway derives a PATCH's mask from the body's fields) and are
// not updates.
func maskPaths(m *fieldmaskpb.FieldMask, allowed ...string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(m.GetPaths()) == 0 {
		for _, p := range allowed {
			out[p] = true
		}
		return out, nil
	}
	for _, p := range m.GetPaths() {
		if p == "etag" || p == "id" || p == "registration_id" {
			continue
		}
		ok := false
		for _, a := range allowed {
			if p == a {
				ok = true
			}
		}
		if !ok {
			return nil, fault.Invalidf("update_mask path %q is not updatable; allowed: %s", p, strings.Join(allowed, ", "))
		}
		out[p] = true
	}
	return out, nil
}
