// Package issuance is Zerotouch's own PKI for devices (ADR 22): issuing
// CAs whose keys are sealed under the data key, credential policies that
// say what a device may ask for, the checks on a device's PKCS#10 CSR, the
// operational certificates signed at registration and renewal, and the
// revocations published as a CRL and through an OCSP responder.
//
// It knows nothing of transports or storage engines: Store is what it
// needs kept, and a *secrets.Sealer opens the CA keys.
package issuance
