package enrollment

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"unicode/utf8"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// MaxInitialTwin bounds an enrollment's initial twin (DPS allows 32 KB of
// tags and desired properties together).
const MaxInitialTwin = 32 << 10

// Reprovision is what happens to a registered device's assignment when it
// registers again after its enrollment's allocation changed: DPS's
// reprovisionPolicy.
type Reprovision string

// Re-provisioning policies.
const (
	// ReprovisionMigrate moves the device and migrates its data (DPS's
	// default: updateHubAssignment and migrateDeviceData both true).
	ReprovisionMigrate Reprovision = ""
	// ReprovisionReset moves the device and resets it to the enrollment's
	// initial state.
	ReprovisionReset Reprovision = "reset"
	// ReprovisionNever keeps the device where it is.
	ReprovisionNever Reprovision = "never"
)

// DeviceSettings are what an enrollment hands to the devices it admits
// beyond their assignment.
type DeviceSettings struct {
	// InitialTwin is the device's initial twin as JSON:
	// {"tags": {...}, "properties": {"desired": {...}}}; empty for none.
	InitialTwin []byte
	// IoTEdge marks the devices as IoT Edge devices.
	IoTEdge     bool
	Reprovision Reprovision
	// AdoptFrom names the enrollment groups whose registrations a device
	// of this enrollment may take over (the registration moves to this
	// enrollment). A registration ID otherwise stays with the enrollment
	// that first registered it until an operator deletes the registration
	// (ADR 17).
	AdoptFrom []string
	// DisableSAS refuses the enrollment's SAS tokens (symmetric keys)
	// while keeping its keys (DPS service API: disableDeviceSAS).
	DisableSAS bool
	// CredentialPolicy names the credential policy under which the
	// enrollment's devices may be issued certificates from a CSR (ADR 22;
	// DPS: credentialPolicyName); "" issues none.
	CredentialPolicy string
}

// MaxAdoptFrom bounds DeviceSettings.AdoptFrom.
const MaxAdoptFrom = 16

// Validate checks the settings' shape.
func (d DeviceSettings) Validate() error {
	switch d.Reprovision {
	case ReprovisionMigrate, ReprovisionReset, ReprovisionNever:
	default:
		return fault.Invalidf("reprovision policy %q is not one of migrate, reset, never", d.Reprovision)
	}
	if len(d.AdoptFrom) > MaxAdoptFrom {
		return fault.Invalidf("adoptFrom names %d enrollment groups, at most %d allowed", len(d.AdoptFrom), MaxAdoptFrom)
	}
	for i, id := range d.AdoptFrom {
		if err := ValidateID("adoptFrom", id); err != nil {
			return err
		}
		if slices.Contains(d.AdoptFrom[:i], id) {
			return fault.Invalidf("adoptFrom names group %q twice", id)
		}
	}
	if d.CredentialPolicy != "" {
		if err := ValidateID("credentialPolicy", d.CredentialPolicy); err != nil {
			return err
		}
	}
	return ValidateInitialTwin(d.InitialTwin)
}

// ValidateInitialTwin checks a twin: UTF-8 JSON, an object with at most
// "tags" (an object) and "properties" holding at most "desired" (an
// object). (encoding/json lets invalid UTF-8 through in raw values; the
// hub stream carries the twin as a protobuf string, which must be UTF-8.)
func ValidateInitialTwin(twin []byte) error {
	if len(twin) == 0 {
		return nil
	}
	if len(twin) > MaxInitialTwin {
		return fault.Invalidf("initialTwin is %d bytes, at most %d allowed", len(twin), MaxInitialTwin)
	}
	if !utf8.Valid(twin) {
		return fault.Invalidf("initialTwin is not valid UTF-8")
	}
	var t struct {
		Tags       json.RawMessage `json:"tags"`
		Properties *struct {
			Desired json.RawMessage `json:"desired"`
		} `json:"properties"`
	}
	dec := json.NewDecoder(bytes.NewReader(twin))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return fault.Invalidf("initialTwin must be {\"tags\": {...}, \"properties\": {\"desired\": {...}}}: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fault.Invalidf("initialTwin has trailing data")
	}
	for name, v := range map[string]json.RawMessage{"initialTwin.tags": t.Tags, "initialTwin.properties.desired": desired(t.Properties)} {
		if len(v) > 0 && !bytes.Equal(v, []byte("null")) && v[0] != '{' {
			return fault.Invalidf("%s must be a JSON object", name)
		}
	}
	return nil
}

func desired(p *struct {
	Desired json.RawMessage `json:"desired"`
}) json.RawMessage {
	if p == nil {
		return nil
	}
	return p.Desired
}
