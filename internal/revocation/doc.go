// Package revocation checks manufacturer certificates against the
// revocation lists and OCSP responders of their issuers (ADR 23): CRLs an
// operator uploaded for a CA certificate, and CRLs fetched from the CRL
// distribution points of the certificates devices present. CRLs are kept
// in the store (so every replica uses the same ones and knows which
// distribution points to refresh), cached in memory, reloaded when the
// store's version moves and fetched again before their nextUpdate. When a
// CRL brings new revocations, the Checker hands the certificates it
// revokes to its Revoked hook, which disables the registrations holding
// them.
//
// It is a service package: it sees the store only as its Store interface,
// fetches over HTTP(S) with the client it is given, and never speaks gRPC
// or knows a storage engine.
package revocation
