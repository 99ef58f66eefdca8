package enrollment

import "context"

// Page asks for one page of a list. Token is the NextToken of the previous
// page ("" for the first); Limit is at least 1.
type Page struct {
	Token string
	Limit int
}

// CAStore keeps CA certificates. Every method returns fault kinds:
// NotFound for an absent resource, AlreadyExists on create of an existing
// name or thumbprint, Conflict when the given etag is not the current one,
// FailedPrecondition where stated, Unavailable when the backend is down.
type CAStore interface {
	// CreateCA stores a new CA and returns its etag. The name and the
	// thumbprint are both unique.
	CreateCA(ctx context.Context, ca *CA) (etag string, err error)
	GetCA(ctx context.Context, name string) (*CA, error)
	// FindCAByThumbprint returns the CA with this certificate, or NotFound.
	FindCAByThumbprint(ctx context.Context, thumbprint string) (*CA, error)
	// FindCAsBySubject returns the CAs whose subject has this SubjectKey,
	// possibly none.
	FindCAsBySubject(ctx context.Context, subjectKey string) ([]*CA, error)
	// ListCAs pages through CAs ordered by name.
	ListCAs(ctx context.Context, p Page) (cas []*CA, next string, err error)
	// UpdateCA replaces the mutable fields (Verified, VerificationCode,
	// CodeExpires, Updated) if ca.Etag is current, and returns the new etag.
	UpdateCA(ctx context.Context, ca *CA) (etag string, err error)
	// DeleteCA removes a CA. A non-empty etag must be current. A CA that an
	// enrollment group refers to is FailedPrecondition (RESOURCE_IN_USE).
	DeleteCA(ctx context.Context, name, etag string) error
}

// GroupStore keeps enrollment groups, with the error contract of CAStore.
type GroupStore interface {
	// CreateGroup stores a new group and returns its etag. The CA must
	// exist (FailedPrecondition otherwise) and have no group yet
	// (AlreadyExists otherwise).
	CreateGroup(ctx context.Context, g *Group) (etag string, err error)
	GetGroup(ctx context.Context, id string) (*Group, error)
	// FindGroupByCA returns the group keyed on the named CA, or NotFound.
	FindGroupByCA(ctx context.Context, caName string) (*Group, error)
	ListGroups(ctx context.Context, p Page) (groups []*Group, next string, err error)
	// UpdateGroup replaces the mutable fields (Disabled, EKAllowList,
	// Allocation, Revocation, DeviceSettings, Updated) if g.Etag is
	// current, and returns the new etag.
	UpdateGroup(ctx context.Context, g *Group) (etag string, err error)
	DeleteGroup(ctx context.Context, id, etag string) error
}

// IndividualStore keeps individual enrollments, keyed on Key(RegistrationID),
// with the error contract of CAStore.
type IndividualStore interface {
	// CreateIndividual stores a new enrollment; the registration ID (case
	// folded) and the thumbprint are both unique. An individual
	// enrollment reserves two names, its registration ID and its
	// effective device ID, in one case-folded namespace: a name another
	// individual enrollment reserves is AlreadyExists with reason
	// DEVICE_ID_CONFLICT (NameTaken), and UpdateIndividual applies the
	// same rule to a changed device ID.
	CreateIndividual(ctx context.Context, e *Individual) (etag string, err error)
	// ReservedByIndividual reports whether an individual enrollment holds
	// name (case folded) as its registration ID or its device ID: a group
	// device, whose device ID is its registration ID, may not take it.
	ReservedByIndividual(ctx context.Context, name string) (bool, error)
	GetIndividual(ctx context.Context, registrationID string) (*Individual, error)
	// FindIndividualByThumbprint returns the enrollment of this leaf, or NotFound.
	FindIndividualByThumbprint(ctx context.Context, thumbprint string) (*Individual, error)
	ListIndividuals(ctx context.Context, p Page) (es []*Individual, next string, err error)
	// UpdateIndividual replaces the mutable fields (DeviceID, Disabled,
	// Allocation, Updated) if e.Etag is current, and returns the new etag.
	UpdateIndividual(ctx context.Context, e *Individual) (etag string, err error)
	DeleteIndividual(ctx context.Context, registrationID, etag string) error
}

// Store is every enrollment store.
type Store interface {
	CAStore
	GroupStore
	IndividualStore
}
