// Package attestation groups the ways a device proves who it is, one
// subpackage per mechanism (x509 now; tpm and symmetric keys later). Each
// mechanism is a pure domain package: it checks evidence with the standard
// library and crypto libraries only, returns errors with stable reasons from
// internal/fault, and never touches storage, protobuf or gRPC. Matching
// evidence to enrollments is the enrollment package's job; the registration
// flow that joins them lives in internal/provisioning.
package attestation
