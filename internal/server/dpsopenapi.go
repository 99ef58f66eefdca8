package server

import (
	"encoding/json"
	"reflect"
	"strings"

	"github.com/zerotouch/zerotouch/internal/apierr"
	"github.com/zerotouch/zerotouch/internal/dpsdevice"
	"github.com/zerotouch/zerotouch/internal/dpsservice"
)

// The DPS-compatible APIs' OpenAPI (Swagger 2.0) document, served at
// GET /openapi-dps.json. Its schemas are derived from the Go types the
// handlers encode and decode (by their JSON tags), so the document cannot
// drift from the wire shapes; its operations are the handlers' routes,
// which a test sends through the real server.

// dpsOperation is one documented route.
type dpsOperation struct {
	method, path, id, summary string
	// device: the device API (no access key; the device's credential).
	device      bool
	body, reply any
	status      string
	params      []map[string]any
}

func pathParam(name, desc string) map[string]any {
	return map[string]any{"name": name, "in": "path", "required": true, "type": "string", "description": desc}
}

var (
	apiVersionParam = map[string]any{"name": "api-version", "in": "query", "required": true, "type": "string",
		"description": "any version is accepted; a csr needs 2025-07-01-preview or later"}
	continuationParams = []map[string]any{
		{"name": "x-ms-continuation", "in": "header", "type": "string", "description": "the previous page's continuation token"},
		{"name": "x-ms-max-item-count", "in": "header", "type": "integer", "description": "page size, 1-" + "1000"},
	}
	regIDParam   = pathParam("registrationId", "the device's registration ID")
	scopeParam   = pathParam("idScope", "the ID scope (dps.id_scope)")
	groupIDParam = pathParam("enrollmentGroupId", "the enrollment group's ID")
)

// querySpecification is DPS's QuerySpecification (only SELECT * FROM
// enrollments, enrollmentGroups or registrations).
type querySpecification struct {
	Query string `json:"query"`
}

var dpsOperations = []dpsOperation{
	{method: "put", path: "/{idScope}/registrations/{registrationId}/register", id: "RuntimeRegistration_RegisterDevice", device: true,
		summary: "Register a device (X.509 in the TLS handshake, a SAS token in Authorization, or DPS's TPM flow); 202 assigning while a custom allocation webhook decides",
		body:    dpsdevice.DeviceRegistration{}, reply: dpsdevice.OperationStatus{}, params: []map[string]any{scopeParam, regIDParam}},
	{method: "get", path: "/{idScope}/registrations/{registrationId}/operations/{operationId}", id: "RuntimeRegistration_OperationStatusLookup", device: true,
		summary: "Poll a registration operation", reply: dpsdevice.OperationStatus{},
		params: []map[string]any{scopeParam, regIDParam, pathParam("operationId", "the operation ID a register answer gave")}},
	{method: "post", path: "/{idScope}/registrations/{registrationId}", id: "RuntimeRegistration_DeviceRegistrationStatusLookup", device: true,
		summary: "Read the device's registration (a csr here is a 400)", body: dpsdevice.DeviceRegistration{}, reply: dpsdevice.RegistrationState{},
		params: []map[string]any{scopeParam, regIDParam}},

	{method: "put", path: "/enrollments/{registrationId}", id: "IndividualEnrollment_CreateOrUpdate", summary: "Create or replace an individual enrollment (If-Match for a replace)",
		body: dpsservice.IndividualEnrollment{}, reply: dpsservice.IndividualEnrollment{}, params: []map[string]any{regIDParam}},
	{method: "get", path: "/enrollments/{registrationId}", id: "IndividualEnrollment_Get", summary: "Read an individual enrollment (keys are not shown)",
		reply: dpsservice.IndividualEnrollment{}, params: []map[string]any{regIDParam}},
	{method: "delete", path: "/enrollments/{registrationId}", id: "IndividualEnrollment_Delete", summary: "Delete an individual enrollment (If-Match honoured)",
		status: "204", params: []map[string]any{regIDParam}},
	{method: "post", path: "/enrollments/{registrationId}/attestationmechanism", id: "IndividualEnrollment_GetAttestationMechanism",
		summary: "Read the enrollment's attestation mechanism with its keys", reply: dpsservice.AttestationMechanism{}, params: []map[string]any{regIDParam}},
	{method: "post", path: "/enrollments", id: "IndividualEnrollment_RunBulkOperation", summary: "Create, update or delete individual enrollments in bulk",
		body: dpsservice.BulkOperation{}, reply: dpsservice.BulkResult{}},
	{method: "post", path: "/enrollments/query", id: "IndividualEnrollment_Query", summary: "Page through the individual enrollments",
		body: querySpecification{}, reply: []dpsservice.IndividualEnrollment{}, params: continuationParams},

	{method: "put", path: "/enrollmentGroups/{enrollmentGroupId}", id: "EnrollmentGroup_CreateOrUpdate", summary: "Create or replace an enrollment group (If-Match for a replace)",
		body: dpsservice.EnrollmentGroup{}, reply: dpsservice.EnrollmentGroup{}, params: []map[string]any{groupIDParam}},
	{method: "get", path: "/enrollmentGroups/{enrollmentGroupId}", id: "EnrollmentGroup_Get", summary: "Read an enrollment group (keys are not shown)",
		reply: dpsservice.EnrollmentGroup{}, params: []map[string]any{groupIDParam}},
	{method: "delete", path: "/enrollmentGroups/{enrollmentGroupId}", id: "EnrollmentGroup_Delete", summary: "Delete an enrollment group (its devices' identities are disabled)",
		status: "204", params: []map[string]any{groupIDParam}},
	{method: "post", path: "/enrollmentGroups/{enrollmentGroupId}/attestationmechanism", id: "EnrollmentGroup_GetAttestationMechanism",
		summary: "Read the group's attestation mechanism with its keys", reply: dpsservice.AttestationMechanism{}, params: []map[string]any{groupIDParam}},
	{method: "post", path: "/enrollmentGroups", id: "EnrollmentGroup_RunBulkOperation", summary: "Create, update or delete enrollment groups in bulk",
		body: dpsservice.BulkOperation{}, reply: dpsservice.BulkResult{}},
	{method: "post", path: "/enrollmentGroups/query", id: "EnrollmentGroup_Query", summary: "Page through the enrollment groups",
		body: querySpecification{}, reply: []dpsservice.EnrollmentGroup{}, params: continuationParams},

	{method: "get", path: "/registrations/{registrationId}", id: "DeviceRegistrationState_Get", summary: "Read a device's registration state",
		reply: dpsservice.DeviceRegistrationState{}, params: []map[string]any{regIDParam}},
	{method: "delete", path: "/registrations/{registrationId}", id: "DeviceRegistrationState_Delete", summary: "Delete a device's registration (it may provision afresh)",
		status: "204", params: []map[string]any{regIDParam}},
	{method: "post", path: "/registrations/{enrollmentGroupId}/query", id: "DeviceRegistrationState_Query", summary: "Page through an enrollment group's registrations",
		body: querySpecification{}, reply: []dpsservice.DeviceRegistrationState{}, params: append([]map[string]any{groupIDParam}, continuationParams...)},
}

// dpsOpenAPI builds the document.
func dpsOpenAPI() ([]byte, error) {
	defs := map[string]any{}
	paths := map[string]map[string]any{}
	for _, op := range dpsOperations {
		params := append([]map[string]any{apiVersionParam}, op.params...)
		if op.body != nil {
			params = append(params, map[string]any{"name": "body", "in": "body", "required": op.method != "post" || !op.device, "schema": schemaOf(reflect.TypeOf(op.body), defs)})
		}
		status := op.status
		if status == "" {
			status = "200"
		}
		ok := map[string]any{"description": "OK"}
		if op.reply != nil {
			ok["schema"] = schemaOf(reflect.TypeOf(op.reply), defs)
		}
		o := map[string]any{
			"operationId": op.id, "summary": op.summary, "parameters": params,
			"responses": map[string]any{status: ok, "default": map[string]any{"description": "DPS's error body; its info.reason is Zerotouch's reason (docs/errors.md)",
				"schema": schemaOf(reflect.TypeOf(apierr.DPSErrorBody{}), defs)}},
		}
		if op.device {
			o["tags"], o["security"] = []string{"device"}, []any{}
		} else {
			o["tags"] = []string{"service"}
		}
		if paths[op.path] == nil {
			paths[op.path] = map[string]any{}
		}
		paths[op.path][op.method] = o
	}
	doc := map[string]any{
		"swagger": "2.0",
		"info": map[string]any{"title": "Zerotouch: DPS-compatible device and service APIs", "version": "1",
			"description": "Azure IoT Hub Device Provisioning Service's device API (under /{idScope}) and service API, as Zerotouch serves them on its REST listener. " +
				"Schemas are Zerotouch's wire shapes. See docs/dps.md."},
		"schemes": []string{"https"}, "consumes": []string{"application/json"}, "produces": []string{"application/json"},
		"securityDefinitions": map[string]any{"SharedAccessSignature": map[string]any{"type": "apiKey", "in": "header", "name": "Authorization",
			"description": "SharedAccessSignature sr=…&sig=…&se=…&skn=… signed with an access key's DPS shared access key (service API), or an Authorization: Bearer ztk.… access key"}},
		"security":    []any{map[string]any{"SharedAccessSignature": []string{}}},
		"paths":       paths,
		"definitions": defs,
	}
	return json.MarshalIndent(doc, "", "  ")
}

var rawMessage = reflect.TypeOf(json.RawMessage{})

// dpsNames are DPS's names for the shapes whose Go names differ.
var dpsNames = map[string]string{
	"registrationRequest": "DeviceRegistration", "tpmAttestation": "DeviceTpmAttestation", "querySpecification": "QuerySpecification",
	"RegistrationState": "DeviceRegistrationResult", "OperationStatus": "RegistrationOperationStatus", "TPMResult": "TpmRegistrationResult",
	"AttestedBy": "X509RegistrationResult", "BulkOperation": "BulkEnrollmentOperation", "BulkResult": "BulkEnrollmentOperationResult",
	"BulkError": "BulkEnrollmentOperationError", "DPSErrorBody": "ProvisioningServiceErrorDetails", "TPMAttestation": "TpmAttestation",
}

// schemaOf is the JSON schema of a Go type as encoding/json writes it;
// named structs go into defs and are referenced.
func schemaOf(t reflect.Type, defs map[string]any) map[string]any {
	if t == rawMessage {
		return map[string]any{"description": "any JSON value"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem(), defs)
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), defs)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), defs)}
	case reflect.Struct:
		name, ok := dpsNames[t.Name()]
		if !ok {
			name = t.Name()
		}
		ref := map[string]any{"$ref": "#/definitions/" + name}
		if _, done := defs[name]; done {
			return ref
		}
		defs[name] = nil // a placeholder against recursion
		props := map[string]any{}
		var required []string
		addFields(t, defs, props, &required)
		s := map[string]any{"type": "object", "properties": props}
		if len(required) > 0 {
			s["required"] = required
		}
		defs[name] = s
		return ref
	}
	return map[string]any{}
}

func addFields(t reflect.Type, defs, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			addFields(f.Type, defs, props, required)
			continue
		}
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type, defs)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && f.Type.Kind() != reflect.Pointer {
			*required = append(*required, name)
		}
	}
}
