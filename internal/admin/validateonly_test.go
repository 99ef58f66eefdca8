package admin

import (
	"testing"

	"github.com/zerotouch/zerotouch/enrollment"
	"github.com/zerotouch/zerotouch/internal/fault"
)

// TestValidateOnly: a validate-only create answers as the create would,
// for the checks before the write and for the store's own refusals (names
// and credential taken), and writes nothing, not even an audit record.
func TestValidateOnly(t *testing.T) {
	s, logged := newAdmin(t)
	ctx := t.Context()
	check := ValidateOnly(ctx)
	ca := mintCA(t, "Acme Root")
	if _, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "dev-1", Allocation: hashedOn()}, certPEM(mintDevice(t, "dev-1", ca).Cert)); err != nil {
		t.Fatal(err)
	}
	dev2 := mintDevice(t, "dev-2", ca)
	if _, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "dev-2", DeviceID: "device-2", Allocation: hashedOn()}, certPEM(dev2.Cert)); err != nil {
		t.Fatal(err)
	}
	tpmEK := ekPEM(t)
	if _, err := s.CreateTPMIndividual(ctx, &enrollment.Individual{RegistrationID: "tpm-1", Allocation: hashedOn()}, nil, tpmEK); err != nil {
		t.Fatal(err)
	}
	registerDevice(t, s, "grp-dev", "s1", "g1")
	fresh := mintDevice(t, "dev-3", ca)
	cases := []struct {
		name   string
		create func() error
		want   fault.Reason
	}{
		{"fresh X.509", func() error {
			_, err := s.CreateIndividual(check, &enrollment.Individual{RegistrationID: "dev-3", Allocation: hashedOn()}, certPEM(fresh.Cert))
			return err
		}, ""},
		{"fresh TPM", func() error {
			_, err := s.CreateTPMIndividual(check, &enrollment.Individual{Allocation: hashedOn()}, nil, ekPEM(t))
			return err
		}, ""},
		{"fresh symmetric key", func() error {
			_, _, err := s.CreateSymmetricIndividual(check, &enrollment.Individual{RegistrationID: "sym-1", Allocation: hashedOn()}, nil, nil)
			return err
		}, ""},
		{"malformed", func() error {
			_, err := s.CreateIndividual(check, &enrollment.Individual{RegistrationID: "dev 3"}, certPEM(fresh.Cert))
			return err
		}, fault.RegistrationIDInvalid},
		{"bad settings", func() error {
			_, err := s.CreateIndividual(check, &enrollment.Individual{RegistrationID: "dev-3", Allocation: hashedOn(),
				DeviceSettings: enrollment.DeviceSettings{InitialTwin: []byte(`[]`)}}, certPEM(fresh.Cert))
			return err
		}, fault.FieldInvalid},
		{"registration ID taken, any case", func() error {
			_, err := s.CreateIndividual(check, &enrollment.Individual{RegistrationID: "DEV-1", Allocation: hashedOn()}, certPEM(mintDevice(t, "DEV-1", ca).Cert))
			return err
		}, fault.ResourceExists},
		{"certificate taken", func() error {
			_, err := s.CreateIndividual(check, &enrollment.Individual{RegistrationID: "dev-3", Thumbprint: enrollment.Thumbprint(dev2.Cert.Raw), Allocation: hashedOn()}, "")
			return err
		}, fault.ResourceExists},
		{"EK taken", func() error {
			_, err := s.CreateTPMIndividual(check, &enrollment.Individual{RegistrationID: "tpm-2", Allocation: hashedOn()}, nil, tpmEK)
			return err
		}, fault.ResourceExists},
		{"registration ID is another's device ID", func() error {
			_, err := s.CreateIndividual(check, &enrollment.Individual{RegistrationID: "Device-2", Allocation: hashedOn()}, certPEM(mintDevice(t, "Device-2", ca).Cert))
			return err
		}, fault.DeviceIDConflict},
		{"device ID is another's registration ID", func() error {
			_, err := s.CreateIndividual(check, &enrollment.Individual{RegistrationID: "dev-3", DeviceID: "dev-1", Allocation: hashedOn()}, certPEM(fresh.Cert))
			return err
		}, fault.DeviceIDConflict},
		{"device ID held by a group device's identity", func() error {
			_, err := s.CreateIndividual(check, &enrollment.Individual{RegistrationID: "dev-3", DeviceID: "grp-dev", Allocation: hashedOn()}, certPEM(fresh.Cert))
			return err
		}, fault.DeviceIDConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, logBefore := snapshot(t, s), logged.Len()
			reason(t, tc.create(), tc.want)
			unchanged(t, s, before, tc.name)
			if logged.Len() != logBefore {
				t.Fatalf("a validate-only create recorded a change: %s", logged.String()[logBefore:])
			}
		})
	}
	// The fresh one passes the check, is created for real, and then fails
	// the check as the create would.
	if _, err := s.CreateIndividual(ctx, &enrollment.Individual{RegistrationID: "dev-3", Allocation: hashedOn()}, certPEM(fresh.Cert)); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateIndividual(check, &enrollment.Individual{RegistrationID: "dev-3", Allocation: hashedOn()}, certPEM(fresh.Cert))
	reason(t, err, fault.ResourceExists)
}
