package enrollment

import "github.com/zerotouch/zerotouch/internal/fault"

// RevocationCheck says how an X.509 group treats a device certificate
// whose revocation status cannot be learnt (ADR 23).
type RevocationCheck string

// Revocation checks.
const (
	// RevocationRequired (the default, also "") checks every certificate
	// of the device's chain below the group's CA against the CRLs that
	// apply to it (one uploaded for its issuer, and those at its CRL
	// distribution points) and, with OCSP, its responder; a certificate
	// that has such a source but no fresh answer from any of them is
	// refused (REVOCATION_UNKNOWN). A certificate with no source at all
	// (no uploaded CRL for its issuer, no distribution point, no OCSP
	// responder) has nothing to check and passes.
	RevocationRequired RevocationCheck = "required"
	// RevocationBestEffort checks the same sources but admits a device
	// whose status cannot be learnt (a stale or unreachable CRL): fail
	// open. A certificate a source lists as revoked is still refused.
	RevocationBestEffort RevocationCheck = "best_effort"
	// RevocationOff checks nothing.
	RevocationOff RevocationCheck = "off"
)

// RevocationPolicy is an X.509 group's revocation checking.
type RevocationPolicy struct {
	Check RevocationCheck
	// OCSP also asks the OCSP responder named in each certificate's
	// authority information access, when it names one.
	OCSP bool
}

// EffectiveCheck is the check, RevocationRequired when unset.
func (p RevocationPolicy) EffectiveCheck() RevocationCheck {
	if p.Check == "" {
		return RevocationRequired
	}
	return p.Check
}

// Validate checks the policy's shape for a group of mechanism mech.
func (p RevocationPolicy) Validate(mech Mechanism) error {
	switch p.Check {
	case "", RevocationRequired, RevocationBestEffort, RevocationOff:
	default:
		return fault.Invalidf("revocation.check %q is not one of required, best_effort, off", p.Check)
	}
	if p.OCSP && p.Check == RevocationOff {
		return fault.Invalidf("revocation.ocsp needs revocation checking (revocation.check is off)")
	}
	if mech != MechanismX509 && mech != "" && (p.OCSP || p.Check != "") {
		return fault.Invalidf("revocation is only for X.509 enrollment groups")
	}
	return nil
}
