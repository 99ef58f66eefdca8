package enrollment

import (
	"context"
	"errors"

	"github.com/zerotouch/zerotouch/internal/fault"
)

// Lookup is what the matching rules read.
type Lookup interface {
	FindIndividualByThumbprint(ctx context.Context, thumbprint string) (*Individual, error)
	FindCAByThumbprint(ctx context.Context, thumbprint string) (*CA, error)
	FindCAsBySubject(ctx context.Context, subjectKey string) ([]*CA, error)
	FindGroupByCA(ctx context.Context, caName string) (*Group, error)
}

// Presented describes a certificate chain as the device presented it, leaf
// first, reduced to what the matching rules need.
type Presented struct {
	// Thumbprints of the presented certificates, leaf first.
	Thumbprints []string
	// TopIssuerKey is the SubjectKey of the issuer of the last presented
	// certificate, or "" if that certificate is self-issued.
	TopIssuerKey string
}

// Anchor is a CA that an enrollment group trusts, found in or above the
// presented chain.
type Anchor struct {
	CA    *CA
	Group *Group
}

// Match is the enrollment a chain falls under: either an individual
// enrollment, or one or more anchors at the same depth (several only when
// distinct CA certificates share a subject above the presented chain).
type Match struct {
	Individual *Individual
	Anchors    []Anchor
	// Depth is the number of presented certificates below the anchor: the
	// anchor is Thumbprints[Depth], or above the chain when Depth ==
	// len(Thumbprints).
	Depth int
	// Intermediates are uploaded CA certificates between the presented
	// chain and the anchor (the device did not send them).
	Intermediates []*CA
}

// maxUploadedHops bounds the walk through uploaded CAs above a chain.
const maxUploadedHops = 4

// Resolve applies the lookup order: an individual enrollment for the leaf
// wins; otherwise the enrollment group of the nearest certificate up the
// chain. It does not verify signatures or check enabled state: the caller
// verifies the chain to the anchors first, and then refuses a disabled match.
//
// It fails with reason CERTIFICATE_UNTRUSTED when no certificate in or
// above the chain is a known CA, and ENROLLMENT_NOT_FOUND when known CAs
// have no enrollment group.
func Resolve(ctx context.Context, l Lookup, p Presented) (*Match, error) {
	if len(p.Thumbprints) == 0 {
		return nil, fault.New(fault.Unauthenticated, fault.CertificateMissing, "no client certificate")
	}
	ind, err := l.FindIndividualByThumbprint(ctx, p.Thumbprints[0])
	switch {
	case err == nil:
		return &Match{Individual: ind}, nil
	case !errors.Is(err, fault.ErrNotFound):
		return nil, err
	}
	return ResolveGroup(ctx, l, p, MechanismX509)
}

// ResolveGroup finds the enrollment group, of mechanism mech, of the
// nearest certificate up the chain: among the presented certificates, then
// the uploaded CA that issued the topmost one, and up through uploaded CAs
// from there. Groups of another mechanism are passed over.
func ResolveGroup(ctx context.Context, l Lookup, p Presented, mech Mechanism) (*Match, error) {
	groupOf := func(ca *CA) (*Group, error) {
		g, err := l.FindGroupByCA(ctx, ca.Name)
		if errors.Is(err, fault.ErrNotFound) || err == nil && g.EffectiveMechanism() != mech {
			return nil, nil
		}
		return g, err
	}
	knownCA := false
	for depth := 1; depth < len(p.Thumbprints); depth++ {
		ca, err := l.FindCAByThumbprint(ctx, p.Thumbprints[depth])
		if errors.Is(err, fault.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		knownCA = true
		g, err := groupOf(ca)
		if err != nil {
			return nil, err
		}
		if g != nil {
			return &Match{Anchors: []Anchor{{CA: ca, Group: g}}, Depth: depth}, nil
		}
	}

	key := p.TopIssuerKey
	var above []*CA
	for hop := 0; key != "" && hop < maxUploadedHops; hop++ {
		cas, err := l.FindCAsBySubject(ctx, key)
		if err != nil {
			return nil, err
		}
		var anchors []Anchor
		var next *CA
		for _, ca := range cas {
			knownCA = true
			g, err := groupOf(ca)
			if err != nil {
				return nil, err
			}
			if g != nil {
				anchors = append(anchors, Anchor{CA: ca, Group: g})
			} else if next == nil {
				next = ca
			}
		}
		if len(anchors) > 0 {
			return &Match{Anchors: anchors, Depth: len(p.Thumbprints), Intermediates: above}, nil
		}
		if next == nil {
			break
		}
		// An uploaded intermediate without a group: keep walking up from it.
		cert, err := next.Certificate()
		if err != nil || string(cert.RawIssuer) == string(cert.RawSubject) {
			break
		}
		above = append(above, next)
		key = SubjectKey(cert.RawIssuer)
	}
	if knownCA {
		return nil, fault.New(fault.Unauthenticated, fault.EnrollmentNotFound, "no enrollment group for the certificate chain")
	}
	return nil, fault.New(fault.Unauthenticated, fault.CertificateUntrusted, "certificate chain does not lead to a known CA")
}
