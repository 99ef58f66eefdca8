package dpsservice

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/zerotouch/zerotouch/enrollment"
)

// TestSettingsRoundTrip: each DPS setting is stored as its domain form
// and answered as DPS writes it.
func TestSettingsRoundTrip(t *testing.T) {
	f := newFixture(t)
	sym := `"attestation":{"type":"symmetricKey"}`
	cases := []struct {
		name, fields string
		stored       func(e *enrollment.Individual) bool
		answer       func(e *IndividualEnrollment) bool
	}{
		{"defaults", ``,
			func(e *enrollment.Individual) bool {
				return e.Allocation.Policy == enrollment.PolicyHashed && len(e.Allocation.Shards) == 0 && e.Reprovision == enrollment.ReprovisionMigrate && !e.Disabled
			},
			func(e *IndividualEnrollment) bool {
				p := e.ReprovisionPolicy
				return e.AllocationPolicy == "hashed" && *p.UpdateHubAssignment && *p.MigrateDeviceData && e.Capabilities == nil && e.IoTHubs == nil
			}},
		{"hashed over hubs", `,"allocationPolicy":"hashed","iotHubs":["HUB-A.example.com","hub-b.example.com"]`,
			func(e *enrollment.Individual) bool {
				return slices.Equal(e.Allocation.Shards, []string{"hub-a", "hub-b"})
			},
			func(e *IndividualEnrollment) bool {
				return slices.Equal(e.IoTHubs, []string{"hub-a.example.com", "hub-b.example.com"}) && e.IoTHubHostName == ""
			}},
		{"static by host name", `,"iotHubHostName":"hub-b.example.com"`,
			func(e *enrollment.Individual) bool {
				return e.Allocation.Policy == enrollment.PolicyStatic && e.Allocation.StaticShard == "hub-b"
			},
			func(e *IndividualEnrollment) bool {
				return e.AllocationPolicy == "static" && e.IoTHubHostName == "hub-b.example.com"
			}},
		{"static by one hub", `,"allocationPolicy":"static","iotHubs":["hub-a.example.com"]`,
			func(e *enrollment.Individual) bool { return e.Allocation.StaticShard == "hub-a" },
			func(e *IndividualEnrollment) bool {
				return e.IoTHubHostName == "hub-a.example.com" && slices.Equal(e.IoTHubs, []string{"hub-a.example.com"})
			}},
		{"static among hubs", `,"allocationPolicy":"static","iotHubs":["hub-a.example.com","hub-b.example.com"],"iotHubHostName":"hub-b.example.com"`,
			func(e *enrollment.Individual) bool {
				return e.Allocation.StaticShard == "hub-b" && len(e.Allocation.Shards) == 2
			},
			func(e *IndividualEnrollment) bool { return e.IoTHubHostName == "hub-b.example.com" }},
		{"geo", `,"allocationPolicy":"geoLatency"`,
			func(e *enrollment.Individual) bool { return e.Allocation.Policy == enrollment.PolicyGeo },
			func(e *IndividualEnrollment) bool { return e.AllocationPolicy == "geoLatency" }},
		{"custom", `,"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"https://alloc.example.com/x","apiVersion":"2019-03-31"}`,
			func(e *enrollment.Individual) bool {
				return e.Allocation.Policy == enrollment.PolicyCustom && e.Allocation.Webhook.URL == "https://alloc.example.com/x"
			},
			func(e *IndividualEnrollment) bool {
				var def map[string]string
				_ = json.Unmarshal(e.CustomAllocationDefinition, &def)
				return e.AllocationPolicy == "custom" && def["webhookUrl"] == "https://alloc.example.com/x" && def["apiVersion"] == "2021-10-01"
			}},
		{"null definition", `,"customAllocationDefinition":null,"initialTwin":null,"optionalDeviceInformation":null`,
			func(e *enrollment.Individual) bool { return e.Allocation.Webhook == nil && e.InitialTwin == nil },
			func(e *IndividualEnrollment) bool { return e.CustomAllocationDefinition == nil }},
		{"never reprovision", `,"reprovisionPolicy":{"updateHubAssignment":false,"migrateDeviceData":true}`,
			func(e *enrollment.Individual) bool { return e.Reprovision == enrollment.ReprovisionNever },
			func(e *IndividualEnrollment) bool {
				return !*e.ReprovisionPolicy.UpdateHubAssignment && !*e.ReprovisionPolicy.MigrateDeviceData
			}},
		{"reset", `,"reprovisionPolicy":{"updateHubAssignment":true,"migrateDeviceData":false,"adoptFromGroups":["old-a","old-b"]}`,
			func(e *enrollment.Individual) bool {
				return e.Reprovision == enrollment.ReprovisionReset && slices.Equal(e.AdoptFrom, []string{"old-a", "old-b"})
			},
			func(e *IndividualEnrollment) bool {
				p := e.ReprovisionPolicy
				return *p.UpdateHubAssignment && !*p.MigrateDeviceData && slices.Equal(p.AdoptFromGroups, []string{"old-a", "old-b"})
			}},
		{"twin, edge, disabled", `,"initialTwin":{ "tags" : {"a": "b"}, "properties":{"desired":{"x":1}} },"capabilities":{"iotEdge":true},"provisioningStatus":"disabled"`,
			func(e *enrollment.Individual) bool {
				return string(e.InitialTwin) == `{"tags":{"a":"b"},"properties":{"desired":{"x":1}}}` && e.IoTEdge && e.Disabled
			},
			func(e *IndividualEnrollment) bool {
				return string(e.InitialTwin) == `{"tags":{"a":"b"},"properties":{"desired":{"x":1}}}` && e.Capabilities.IoTEdge && e.ProvisioningStatus == "disabled"
			}},
		{"explicit enabled", `,"provisioningStatus":"enabled","capabilities":{"iotEdge":false}`,
			func(e *enrollment.Individual) bool { return !e.Disabled && !e.IoTEdge },
			func(e *IndividualEnrollment) bool { return e.ProvisioningStatus == "enabled" && e.Capabilities == nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out IndividualEnrollment
			f.ok(f.call("PUT", "/enrollments/set-1", `{`+sym+tc.fields+`}`), 200, &out)
			e, err := f.store.Store.GetIndividual(t.Context(), "set-1")
			if err != nil || !tc.stored(e) {
				t.Fatalf("stored: %+v %v", e, err)
			}
			if !tc.answer(&out) {
				t.Fatalf("PUT answer: %+v", out)
			}
			var got IndividualEnrollment
			f.ok(f.call("GET", "/enrollments/set-1", ""), 200, &got)
			if !tc.answer(&got) {
				t.Fatalf("GET answer: %+v", got)
			}
			f.ok(f.call("DELETE", "/enrollments/set-1", ""), 204, nil)
		})
	}
}

// TestDeletedShardIsNamedByID: an enrollment whose shard was deleted since
// names it by its ID.
func TestDeletedShardIsNamedByID(t *testing.T) {
	f := newFixture(t)
	f.ok(f.call("PUT", "/enrollments/ds-1", `{"attestation":{"type":"symmetricKey"},"iotHubs":["hub-b.example.com"]}`), 200, nil)
	if err := f.adm.DeleteShard(t.Context(), "hub-b", ""); err != nil {
		t.Fatal(err)
	}
	var got IndividualEnrollment
	f.ok(f.call("GET", "/enrollments/ds-1", ""), 200, &got)
	if !slices.Equal(got.IoTHubs, []string{"hub-b"}) {
		t.Fatalf("hubs %v", got.IoTHubs)
	}
}

func TestCertificateText(t *testing.T) {
	if got, err := certificateText("f", "  -----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"); err != nil || got != "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----" {
		t.Fatalf("PEM: %q %v", got, err)
	}
	if got, err := certificateText("f", "AAEC"); err != nil || got != "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n" {
		t.Fatalf("DER: %q %v", got, err)
	}
	for _, bad := range []string{"", "   ", "%%%", b64(make([]byte, enrollment.MaxCertificatePEM+1))} {
		if _, err := certificateText("f", bad); err == nil {
			t.Errorf("accepted %q", bad[:min(len(bad), 10)])
		}
	}
}
