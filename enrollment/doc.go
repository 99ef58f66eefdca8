// Package enrollment holds what manufacturers and operators upload so that
// devices can be recognised: CA certificates (with proof of possession),
// enrollment groups keyed on a CA, and individual enrollments keyed on one
// device's leaf certificate. It also owns the matching rules that decide which
// enrollment, if any, a presented certificate chain falls under, and the
// storage interfaces those rules need.
//
// This is a domain package: it imports the standard library and
// internal/fault only. No protobuf, gRPC or storage engine, and no other
// domain package.
package enrollment
