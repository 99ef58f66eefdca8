package dps

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/access"
	"github.com/zerotouch/zerotouch/internal/admin"
	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/registry"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// Limits on the service API's requests.
const (
	maxServiceBody = 64 << 10
	maxBulkBody    = 4 << 20
	// MaxBulk bounds the enrollments of one bulk operation.
	MaxBulk = 1000
	// MaxPage bounds x-ms-max-item-count; DefaultPage applies without it.
	MaxPage     = 1000
	DefaultPage = 100
)

// ServiceStore is what the DPS service API reads and writes.
type ServiceStore interface {
	admin.Store
	access.Store
}

// Service is the DPS-compatible service (enrollment management) API:
// /enrollments, /enrollmentGroups and /registrations, as the Azure
// provisioning service SDKs call them (dps-protocol.md §4). It is a second
// transport over the same operator use cases (internal/admin) as the
// native API, so both see the same enrollments. Requests are authenticated
// with DPS SAS tokens signed by an access key's shared access key, or with
// the key's bearer token.
type Service struct {
	// HostName is the service's host name: what a SAS token's sr must
	// name (never the request's Host header). "" accepts no SAS token.
	HostName string
	Admin    *admin.Service
	Store    ServiceStore
	Secrets  *secrets.Sealer
	Now      func() time.Time
	Log      *slog.Logger
}

// Handles reports whether path's first segment belongs to the service API.
func Handles(path string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	switch strings.ToLower(first) {
	case "enrollments", "enrollmentgroups", "registrations":
		return true
	}
	return false
}

type svcRequest struct {
	w     http.ResponseWriter
	r     *http.Request
	key   *access.Key
	kind  string // "enrollments", "enrollmentgroups", "registrations"
	id    string // "" for the collection
	extra string // "", "attestationmechanism", "query"
}

// ServeHTTP routes the service API. Static path segments are matched
// case-insensitively (the Node SDK sends /enrollmentgroups/…). It routes
// on the segments a SAS token's resource is matched against, each decoded
// exactly once, so that what is authorized is what is served:
// "/%65nrollments/acme" is the individual enrollment acme for both, never
// the group acme.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts, ok := access.PathSegments(strings.TrimSuffix(r.URL.EscapedPath(), "/"))
	if !ok {
		s.fail(w, r, fault.Invalidf("the path has an empty, \".\" or \"..\" segment, or is not valid URL encoding"))
		return
	}
	req := &svcRequest{w: w, r: r, kind: strings.ToLower(parts[0])}
	switch req.kind {
	case "enrollments", "enrollmentgroups", "registrations":
	default:
		s.fail(w, r, fault.NotFoundf("no such path"))
		return
	}
	if len(parts) > 3 {
		s.fail(w, r, fault.NotFoundf("no such path"))
		return
	}
	if len(parts) > 1 {
		req.id = parts[1]
	}
	if len(parts) == 3 {
		req.extra = strings.ToLower(parts[2])
	}
	// "/enrollments/query" is the query of the collection.
	if req.extra == "" && strings.EqualFold(req.id, "query") && req.kind != "registrations" && r.Method == http.MethodPost {
		req.id, req.extra = "", "query"
	}
	var op func(*svcRequest) error
	var perm access.Permission
	switch m := r.Method; {
	case req.kind == "registrations" && req.id != "" && req.extra == "" && m == http.MethodGet:
		op, perm = s.getRegistration, access.RegistrationRead
	case req.kind == "registrations" && req.id != "" && req.extra == "" && m == http.MethodDelete:
		op, perm = s.deleteRegistration, access.RegistrationWrite
	case req.kind == "registrations" && req.id != "" && req.extra == "query" && m == http.MethodPost:
		op, perm = s.queryRegistrations, access.RegistrationRead
	case req.kind == "registrations":
	case req.id == "" && req.extra == "query" && m == http.MethodPost:
		op, perm = s.queryEnrollments, access.EnrollmentRead
	case req.id == "" && req.extra == "" && m == http.MethodPost:
		op, perm = s.bulk, access.EnrollmentWrite
	case req.id != "" && req.extra == "" && m == http.MethodPut:
		op, perm = s.put, access.EnrollmentWrite
	case req.id != "" && req.extra == "" && m == http.MethodGet:
		op, perm = s.get, access.EnrollmentRead
	case req.id != "" && req.extra == "" && m == http.MethodDelete:
		op, perm = s.delete, access.EnrollmentWrite
	case req.id != "" && req.extra == "attestationmechanism" && m == http.MethodPost:
		// The answer holds symmetric keys: write permission, not read.
		op, perm = s.attestationMechanism, access.EnrollmentWrite
	}
	if op == nil {
		s.fail(w, r, fault.NotFoundf("no such operation: %s %s", r.Method, r.URL.Path))
		return
	}
	key, err := s.authenticate(r, parts)
	if err == nil {
		err = access.Require(key, perm)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req.key = key
	if err := op(req); err != nil {
		s.fail(w, r, err)
	}
}

// authenticate accepts a DPS SAS token whose resource covers path (the
// decoded segments the request is routed on) or an access key's bearer
// token.
func (s *Service) authenticate(r *http.Request, path []string) (*access.Key, error) {
	auth := r.Header.Get("Authorization")
	if token, ok := strings.CutPrefix(auth, "Bearer "); ok {
		return s.Admin.Authenticate(r.Context(), token)
	}
	return access.AuthenticateSAS(r.Context(), s.Store, s.Secrets, auth, s.HostName, path, s.Now())
}

// readJSON decodes a bounded body, refusing unknown fields.
func readJSON(r *http.Request, limit int64, what string, v any) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "read the request body")
	}
	if int64(len(raw)) > limit {
		return fault.Invalidf("the request body is larger than %d bytes", limit)
	}
	return decodeStrict(raw, what, v)
}

func decodeStrict(raw []byte, what string, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fault.Wrap(fault.InvalidArgument, fault.FieldInvalid, err, "the body is not a valid %s: %v", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fault.Invalidf("the body holds more than one %s, or trailing data", what)
	}
	return nil
}

// quoteEtag is an etag as DPS writes it: a quoted string.
func quoteEtag(etag string) string { return `"` + etag + `"` }

// ifMatch returns the If-Match etag without quotes ("" when absent; "*"
// means any).
func ifMatch(r *http.Request) string { return unquoteEtag(r.Header.Get("If-Match")) }

func unquoteEtag(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
	return strings.Trim(v, `"`)
}

// matchEtag checks a caller's etag against the current one.
func matchEtag(want, current, what, id string) error {
	if want == "" || want == "*" || subtle.ConstantTimeCompare([]byte(want), []byte(current)) == 1 {
		return nil
	}
	return fault.New(fault.Conflict, fault.EtagMismatch, "%s %q has changed (etag mismatch)", what, id)
}

func (s *Service) write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// fail answers an error with DPS's error body; the message says what was
// wrong (operators need it), info.reason carries the stable reason.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	a := apierr.Classify(r.Context(), s.Log, r.Header.Get("X-Request-Id"), err, apierr.Operator)
	if v := a.RetryAfterSeconds(); v != "" {
		w.Header().Set("Retry-After", v)
	}
	s.write(w, a.DPSStatus, errorBody(r, a))
}

// errorBody is DPS's error body for an answer.
func errorBody(r *http.Request, a apierr.Answer) ErrorBody {
	return ErrorBody{ErrorCode: a.DPSErrorCode, TrackingID: r.Header.Get("X-Request-Id"), Message: a.Message,
		Info: map[string]string{"reason": string(a.Reason)}, TimestampUTC: utc(time.Now())}
}

// ---- JSON shapes (dps-protocol.md §4.3) ----

// X509CertificateInfo describes a stored certificate.
type X509CertificateInfo struct {
	SubjectName      string `json:"subjectName,omitempty"`
	SHA256Thumbprint string `json:"sha256Thumbprint,omitempty"`
	IssuerName       string `json:"issuerName,omitempty"`
	NotBeforeUTC     string `json:"notBeforeUtc,omitempty"`
	NotAfterUTC      string `json:"notAfterUtc,omitempty"`
	SerialNumber     string `json:"serialNumber,omitempty"`
	Version          int    `json:"version,omitempty"`
}

// X509CertificateWithInfo is a certificate as sent, or its info as returned.
type X509CertificateWithInfo struct {
	Certificate string               `json:"certificate,omitempty"`
	Info        *X509CertificateInfo `json:"info,omitempty"`
}

// X509Certificates is a primary/secondary pair.
type X509Certificates struct {
	Primary   *X509CertificateWithInfo `json:"primary,omitempty"`
	Secondary *X509CertificateWithInfo `json:"secondary,omitempty"`
}

// X509CAReferences names uploaded, verified CA certificates.
type X509CAReferences struct {
	Primary   string `json:"primary,omitempty"`
	Secondary string `json:"secondary,omitempty"`
}

// X509Attestation is DPS's X509Attestation.
type X509Attestation struct {
	ClientCertificates  *X509Certificates `json:"clientCertificates,omitempty"`
	SigningCertificates *X509Certificates `json:"signingCertificates,omitempty"`
	CAReferences        *X509CAReferences `json:"caReferences,omitempty"`
}

// TPMAttestation is DPS's TpmAttestation (base64 TPM2B_PUBLIC).
type TPMAttestation struct {
	EndorsementKey string `json:"endorsementKey"`
	StorageRootKey string `json:"storageRootKey,omitempty"`
}

// SymmetricKeyAttestation is DPS's SymmetricKeyAttestation (base64 keys).
type SymmetricKeyAttestation struct {
	PrimaryKey   string `json:"primaryKey,omitempty"`
	SecondaryKey string `json:"secondaryKey,omitempty"`
}

// AttestationMechanism is DPS's AttestationMechanism.
type AttestationMechanism struct {
	Type         string                   `json:"type"`
	TPM          *TPMAttestation          `json:"tpm,omitempty"`
	X509         *X509Attestation         `json:"x509,omitempty"`
	SymmetricKey *SymmetricKeyAttestation `json:"symmetricKey,omitempty"`
}

// ReprovisionPolicy is DPS's ReprovisionPolicy.
type ReprovisionPolicy struct {
	UpdateHubAssignment *bool `json:"updateHubAssignment"`
	MigrateDeviceData   *bool `json:"migrateDeviceData"`
	// AdoptFromGroups is Zerotouch's own: the enrollment groups whose
	// registrations this enrollment's devices may take over (ADR 17).
	AdoptFromGroups []string `json:"adoptFromGroups,omitempty"`
}

// DeviceCapabilities is DPS's DeviceCapabilities.
type DeviceCapabilities struct {
	IoTEdge bool `json:"iotEdge"`
}

// enrollmentCommon are the fields individual enrollments and groups share.
type enrollmentCommon struct {
	Attestation                *AttestationMechanism `json:"attestation"`
	Capabilities               *DeviceCapabilities   `json:"capabilities,omitempty"`
	IoTHubHostName             string                `json:"iotHubHostName,omitempty"`
	InitialTwin                json.RawMessage       `json:"initialTwin,omitempty"`
	Etag                       string                `json:"etag,omitempty"`
	ProvisioningStatus         string                `json:"provisioningStatus,omitempty"`
	ReprovisionPolicy          *ReprovisionPolicy    `json:"reprovisionPolicy,omitempty"`
	CreatedDateTimeUTC         string                `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC     string                `json:"lastUpdatedDateTimeUtc,omitempty"`
	AllocationPolicy           string                `json:"allocationPolicy,omitempty"`
	IoTHubs                    []string              `json:"iotHubs,omitempty"`
	CustomAllocationDefinition json.RawMessage       `json:"customAllocationDefinition,omitempty"`
	CredentialPolicyName       string                `json:"credentialPolicyName,omitempty"`
}

// IndividualEnrollment is DPS's IndividualEnrollment.
type IndividualEnrollment struct {
	RegistrationID            string                   `json:"registrationId"`
	DeviceID                  string                   `json:"deviceId,omitempty"`
	RegistrationState         *DeviceRegistrationState `json:"registrationState,omitempty"`
	OptionalDeviceInformation json.RawMessage          `json:"optionalDeviceInformation,omitempty"`
	enrollmentCommon
}

// EnrollmentGroup is DPS's EnrollmentGroup.
type EnrollmentGroup struct {
	EnrollmentGroupID string `json:"enrollmentGroupId"`
	enrollmentCommon
}

// DeviceRegistrationState is DPS's service view of a registration.
type DeviceRegistrationState struct {
	RegistrationID         string `json:"registrationId"`
	CreatedDateTimeUTC     string `json:"createdDateTimeUtc,omitempty"`
	AssignedHub            string `json:"assignedHub,omitempty"`
	DeviceID               string `json:"deviceId,omitempty"`
	Status                 string `json:"status"`
	Substatus              string `json:"substatus,omitempty"`
	ErrorCode              int    `json:"errorCode,omitempty"`
	ErrorMessage           string `json:"errorMessage,omitempty"`
	LastUpdatedDateTimeUTC string `json:"lastUpdatedDateTimeUtc,omitempty"`
	Etag                   string `json:"etag,omitempty"`
	// Payload is the custom allocation webhook's payload for the device.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// BulkOperation is DPS's BulkEnrollmentOperation (and its group form).
type BulkOperation struct {
	Enrollments []json.RawMessage `json:"enrollments"`
	Mode        string            `json:"mode"`
}

// BulkError is one failed item of a bulk operation.
type BulkError struct {
	RegistrationID    string `json:"registrationId,omitempty"`
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
	ErrorCode         int    `json:"errorCode"`
	ErrorStatus       string `json:"errorStatus"`
}

// BulkResult is DPS's BulkEnrollmentOperationResult.
type BulkResult struct {
	IsSuccessful bool        `json:"isSuccessful"`
	Errors       []BulkError `json:"errors"`
}

func toRegistrationState(reg *registry.Registration) *DeviceRegistrationState {
	return &DeviceRegistrationState{RegistrationID: reg.RegistrationID, CreatedDateTimeUTC: utc(reg.Created), AssignedHub: reg.AssignedHub,
		DeviceID: reg.DeviceID, Status: string(reg.Status), Substatus: string(reg.Substatus),
		LastUpdatedDateTimeUTC: utc(reg.Updated), Etag: quoteEtag(reg.Etag), Payload: reg.Payload}
}

// ---- conversions ----

// settingsFromDPS reads what every enrollment carries besides attestation.
func (s *Service) settingsFromDPS(ctx context.Context, c *enrollmentCommon) (disabled bool, alloc enrollment.Allocation, ds enrollment.DeviceSettings, err error) {
	switch c.ProvisioningStatus {
	case "", "enabled":
	case "disabled":
		disabled = true
	default:
		return false, alloc, ds, fault.Invalidf("provisioningStatus %q is not enabled or disabled", c.ProvisioningStatus)
	}
	if c.CredentialPolicyName != "" {
		return false, alloc, ds, fault.Invalidf("credentialPolicyName is not supported")
	}
	if alloc, err = s.allocationFromDPS(ctx, c); err != nil {
		return false, alloc, ds, err
	}
	if c.Capabilities != nil {
		ds.IoTEdge = c.Capabilities.IoTEdge
	}
	if len(c.InitialTwin) > 0 && !bytes.Equal(c.InitialTwin, []byte("null")) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, c.InitialTwin); err != nil {
			return false, alloc, ds, fault.Invalidf("initialTwin is not valid JSON")
		}
		ds.InitialTwin = buf.Bytes()
	}
	if p := c.ReprovisionPolicy; p != nil {
		if p.UpdateHubAssignment == nil || p.MigrateDeviceData == nil {
			return false, alloc, ds, fault.Invalidf("reprovisionPolicy needs both updateHubAssignment and migrateDeviceData")
		}
		switch {
		case !*p.UpdateHubAssignment:
			ds.Reprovision = enrollment.ReprovisionNever
		case *p.MigrateDeviceData:
			ds.Reprovision = enrollment.ReprovisionMigrate
		default:
			ds.Reprovision = enrollment.ReprovisionReset
		}
		ds.AdoptFrom = p.AdoptFromGroups
	}
	return disabled, alloc, ds, ds.Validate()
}

// allocationFromDPS maps allocationPolicy, iotHubs and iotHubHostName (hub
// host names) onto shards (found by their device-facing host name).
func (s *Service) allocationFromDPS(ctx context.Context, c *enrollmentCommon) (enrollment.Allocation, error) {
	a := enrollment.Allocation{Policy: enrollment.PolicyHashed}
	if len(c.IoTHubs) > enrollment.MaxShardsPerPolicy {
		return a, fault.Invalidf("iotHubs has %d entries, at most %d allowed", len(c.IoTHubs), enrollment.MaxShardsPerPolicy)
	}
	var shards []*allocation.Shard
	if len(c.IoTHubs) > 0 || c.IoTHubHostName != "" {
		var err error
		if shards, err = s.Store.AllShards(ctx); err != nil {
			return a, err
		}
	}
	byHost := func(field, host string) (string, error) {
		for _, sh := range shards {
			if strings.EqualFold(sh.Hostname, host) {
				return sh.ID, nil
			}
		}
		return "", fault.New(fault.FailedPrecondition, fault.FieldInvalid, "%s names %q, which is no shard's hostname", field, host)
	}
	for _, h := range c.IoTHubs {
		id, err := byHost("iotHubs", h)
		if err != nil {
			return a, err
		}
		a.Shards = append(a.Shards, id)
	}
	switch c.AllocationPolicy {
	case "", "hashed":
		if c.IoTHubHostName != "" && c.AllocationPolicy == "" {
			// DPS's static form without a policy: the named hub.
			a.Policy = enrollment.PolicyStatic
		} else if c.IoTHubHostName != "" {
			return a, fault.Invalidf("iotHubHostName is only valid with the static allocation policy")
		}
	case "static":
		a.Policy = enrollment.PolicyStatic
		if c.IoTHubHostName == "" && len(a.Shards) != 1 {
			return a, fault.Invalidf("the static allocation policy needs iotHubHostName (or exactly one entry in iotHubs)")
		}
		if c.IoTHubHostName == "" {
			a.StaticShard = a.Shards[0]
		}
	case "geoLatency":
		if c.IoTHubHostName != "" {
			return a, fault.Invalidf("iotHubHostName is only valid with the static allocation policy")
		}
		a.Policy = enrollment.PolicyGeo
	case "custom":
		var def struct {
			WebhookURL string `json:"webhookUrl"`
			APIVersion string `json:"apiVersion"`
		}
		if err := decodeStrict(c.CustomAllocationDefinition, "customAllocationDefinition", &def); err != nil || def.WebhookURL == "" {
			return a, fault.Invalidf("the custom allocation policy needs customAllocationDefinition.webhookUrl")
		}
		a.Policy, a.Webhook = enrollment.PolicyCustom, &enrollment.Webhook{URL: def.WebhookURL}
	default:
		return a, fault.Invalidf("allocationPolicy %q is not one of hashed, geoLatency, static, custom", c.AllocationPolicy)
	}
	if a.Policy != enrollment.PolicyCustom && len(c.CustomAllocationDefinition) > 0 && !bytes.Equal(c.CustomAllocationDefinition, []byte("null")) {
		return a, fault.Invalidf("customAllocationDefinition is only valid with the custom allocation policy")
	}
	if a.Policy == enrollment.PolicyStatic && a.StaticShard == "" {
		id, err := byHost("iotHubHostName", c.IoTHubHostName)
		if err != nil {
			return a, err
		}
		a.StaticShard = id
	}
	return a, a.Validate()
}

// settingsToDPS fills the shared fields of an answer.
func (s *Service) settingsToDPS(ctx context.Context, disabled bool, a enrollment.Allocation, ds enrollment.DeviceSettings, m enrollment.Meta) (enrollmentCommon, error) {
	c := enrollmentCommon{Etag: quoteEtag(m.Etag), CreatedDateTimeUTC: utc(m.Created), LastUpdatedDateTimeUTC: utc(m.Updated),
		ProvisioningStatus: "enabled", AllocationPolicy: string(a.Policy), InitialTwin: ds.InitialTwin}
	switch a.Policy {
	case enrollment.PolicyGeo:
		c.AllocationPolicy = "geoLatency"
	case enrollment.PolicyCustom:
		def, _ := json.Marshal(map[string]string{"webhookUrl": a.Webhook.URL, "apiVersion": "2021-10-01"})
		c.CustomAllocationDefinition = def
	}
	if disabled {
		c.ProvisioningStatus = "disabled"
	}
	if ds.IoTEdge {
		c.Capabilities = &DeviceCapabilities{IoTEdge: true}
	}
	t, f := true, false
	switch ds.Reprovision {
	case enrollment.ReprovisionNever:
		c.ReprovisionPolicy = &ReprovisionPolicy{UpdateHubAssignment: &f, MigrateDeviceData: &f}
	case enrollment.ReprovisionReset:
		c.ReprovisionPolicy = &ReprovisionPolicy{UpdateHubAssignment: &t, MigrateDeviceData: &f}
	default:
		c.ReprovisionPolicy = &ReprovisionPolicy{UpdateHubAssignment: &t, MigrateDeviceData: &t}
	}
	c.ReprovisionPolicy.AdoptFromGroups = ds.AdoptFrom
	if len(a.Shards) == 0 && a.StaticShard == "" {
		return c, nil
	}
	shards, err := s.Store.AllShards(ctx)
	if err != nil {
		return c, err
	}
	host := func(id string) string {
		for _, sh := range shards {
			if sh.ID == id {
				return sh.Hostname
			}
		}
		return id // a shard deleted since: name it by ID
	}
	for _, id := range a.Shards {
		c.IoTHubs = append(c.IoTHubs, host(id))
	}
	if a.StaticShard != "" {
		c.IoTHubHostName = host(a.StaticShard)
	}
	return c, nil
}

// certificateText accepts DPS's certificate forms: PEM, or base64 DER.
func certificateText(field, v string) (string, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "-----BEGIN") {
		return v, nil
	}
	der, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(der) == 0 {
		return "", fault.Invalidf("%s is neither PEM nor base64 DER", field)
	}
	if len(der) > enrollment.MaxCertificatePEM {
		return "", fault.Invalidf("%s is larger than %d bytes", field, enrollment.MaxCertificatePEM)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

func decodeKey(field, v string) ([]byte, error) {
	if v == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fault.Invalidf("%s is not base64", field)
	}
	return k, nil
}

// keysOf opens an enrollment's sealed symmetric keys.
func (s *Service) keysOf(sealed []byte, aad string) (*SymmetricKeyAttestation, error) {
	if s.Secrets == nil {
		return nil, fault.New(fault.FailedPrecondition, fault.SASDisabled, "symmetric keys are turned off (no data key)")
	}
	k, err := s.Secrets.OpenKeys(sealed, aad)
	if err != nil {
		return nil, err
	}
	return &SymmetricKeyAttestation{PrimaryKey: base64.StdEncoding.EncodeToString(k.Primary), SecondaryKey: base64.StdEncoding.EncodeToString(k.Secondary)}, nil
}

// sameKeys reports whether the keys a caller sent (if any) are the stored ones.
func (s *Service) sameKeys(in *SymmetricKeyAttestation, sealed []byte, aad string) error {
	if in == nil || in.PrimaryKey == "" && in.SecondaryKey == "" {
		return nil
	}
	cur, err := s.keysOf(sealed, aad)
	if err != nil {
		return err
	}
	if in.PrimaryKey != "" && subtle.ConstantTimeCompare([]byte(in.PrimaryKey), []byte(cur.PrimaryKey)) != 1 ||
		in.SecondaryKey != "" && subtle.ConstantTimeCompare([]byte(in.SecondaryKey), []byte(cur.SecondaryKey)) != 1 {
		return fault.Invalidf("symmetric keys cannot be changed; delete the enrollment and create it again")
	}
	return nil
}

// queryPattern is the one query form supported: every item.
var queryPattern = regexp.MustCompile(`(?i)^\s*select\s+\*\s+from\s+(enrollments|enrollmentgroups|c|registrations|devices)?\s*$`)

type querySpec struct {
	Query string `json:"query"`
}

// pageOf reads the query body and paging headers.
func pageOf(r *http.Request) (token string, limit int, err error) {
	var q querySpec
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxServiceBody+1))
	if err != nil || len(raw) > maxServiceBody {
		return "", 0, fault.Invalidf("the query body is unreadable or larger than %d bytes", maxServiceBody)
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := decodeStrict(raw, "QuerySpecification", &q); err != nil {
			return "", 0, err
		}
	}
	if q.Query != "" && !queryPattern.MatchString(q.Query) {
		return "", 0, fault.Invalidf("query %q is not supported; only SELECT * FROM <collection> is", q.Query)
	}
	limit = DefaultPage
	if v := r.Header.Get("x-ms-max-item-count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPage {
			return "", 0, fault.Invalidf("x-ms-max-item-count %q is not 1-%d", v, MaxPage)
		}
		limit = n
	}
	return r.Header.Get("x-ms-continuation"), limit, nil
}

func (s *Service) writePage(req *svcRequest, items any, next, itemType string, limit int) {
	h := req.w.Header()
	if next != "" {
		h.Set("x-ms-continuation", next)
	}
	h.Set("x-ms-item-type", itemType)
	h.Set("x-ms-max-item-count", strconv.Itoa(limit))
	s.write(req.w, http.StatusOK, items)
}
