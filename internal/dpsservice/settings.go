package dpsservice

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"

	"github.com/zerotouch/zerotouch/allocation"
	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
	"github.com/zerotouch/zerotouch/internal/secrets"
)

// Conversions between DPS's enrollment fields and the domain's settings,
// allocation, certificates and keys.

// settingsFromDPS reads what every enrollment carries besides attestation.
func (s *Service) settingsFromDPS(ctx context.Context, c *enrollmentCommon) (disabled bool, alloc enrollment.Allocation, ds enrollment.DeviceSettings, err error) {
	switch c.ProvisioningStatus {
	case "", "enabled":
	case "disabled":
		disabled = true
	default:
		return false, alloc, ds, fault.Invalidf("provisioningStatus %q is not enabled or disabled", c.ProvisioningStatus)
	}
	// credentialPolicyName names a credential policy (ADR 22); admin
	// refuses one that does not exist.
	ds.CredentialPolicy = c.CredentialPolicyName
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
	ds.DisableSAS = c.DisableDeviceSAS
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
		if shards, err = s.Admin.AllShards(ctx); err != nil {
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
	c.DisableDeviceSAS = ds.DisableSAS
	c.CredentialPolicyName = ds.CredentialPolicy
	if len(a.Shards) == 0 && a.StaticShard == "" {
		return c, nil
	}
	shards, err := s.Admin.AllShards(ctx)
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

// decodeKeys reads the keys a caller gave (either may be absent: it is
// then generated).
func decodeKeys(k *SymmetricKeyAttestation) (primary, secondary []byte, err error) {
	if k == nil {
		return nil, nil, nil
	}
	if primary, err = decodeKey("attestation.symmetricKey.primaryKey", k.PrimaryKey); err != nil {
		return nil, nil, err
	}
	secondary, err = decodeKey("attestation.symmetricKey.secondaryKey", k.SecondaryKey)
	return primary, secondary, err
}

// shownKeys is the symmetricKey attestation of an answer: the keys (open
// opens them) only where the caller may see them.
func shownKeys(withKeys bool, open func() (*secrets.SymmetricKeys, error)) (*SymmetricKeyAttestation, error) {
	if !withKeys {
		return &SymmetricKeyAttestation{}, nil
	}
	k, err := open()
	if err != nil {
		return nil, err
	}
	return &SymmetricKeyAttestation{PrimaryKey: base64.StdEncoding.EncodeToString(k.Primary), SecondaryKey: base64.StdEncoding.EncodeToString(k.Secondary)}, nil
}

// sameKeys reports whether the keys a caller sent (if any) are the stored
// ones (open opens them).
func sameKeys(in *SymmetricKeyAttestation, open func() (*secrets.SymmetricKeys, error)) error {
	if in == nil || in.PrimaryKey == "" && in.SecondaryKey == "" {
		return nil
	}
	cur, err := shownKeys(true, open)
	if err != nil {
		return err
	}
	if in.PrimaryKey != "" && subtle.ConstantTimeCompare([]byte(in.PrimaryKey), []byte(cur.PrimaryKey)) != 1 ||
		in.SecondaryKey != "" && subtle.ConstantTimeCompare([]byte(in.SecondaryKey), []byte(cur.SecondaryKey)) != 1 {
		return fault.Invalidf("symmetric keys cannot be changed; delete the enrollment and create it again")
	}
	return nil
}
