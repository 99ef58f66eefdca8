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
}

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
		g, err := l.FindGroupByCA(ctx, ca.Name)
		if errors.Is(err, fault.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &Match{Anchors: []Anchor{{CA: ca, Group: g}}, Depth: depth}, nil
	}

	if p.TopIssuerKey != "" {
		cas, err := l.FindCAsBySubject(ctx, p.TopIssuerKey)
		if err != nil {
			return nil, err
		}
		var anchors []Anchor
		for _, ca := range cas {
			knownCA = true
			g, err := l.FindGroupByCA(ctx, ca.Name)
			if errors.Is(err, fault.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			anchors = append(anchors, Anchor{CA: ca, Group: g})
		}
		if len(anchors) > 0 {
			return &Match{Anchors: anchors, Depth: len(p.Thumbprints)}, nil
		}
	}
	if knownCA {
		return nil, fault.New(fault.Unauthenticated, fault.EnrollmentNotFound, "no enrollment group for the certificate chain")
	}
	return nil, fault.New(fault.Unauthenticated, fault.CertificateUntrusted, "certificate chain does not lead to a known CA")
}
