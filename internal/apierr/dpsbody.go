package apierr

import "time"

// DPSErrorBody is DPS's ProvisioningServiceErrorDetails, the error body of
// both DPS-compatible APIs, with the stable reason in info.reason
// (docs/dps.md).
type DPSErrorBody struct {
	ErrorCode    int               `json:"errorCode"`
	TrackingID   string            `json:"trackingId"`
	Message      string            `json:"message"`
	Info         map[string]string `json:"info,omitempty"`
	TimestampUTC string            `json:"timestampUtc"`
}

// DPSBody renders the answer as DPS's error body; trackingID is the
// request ID, now the answer's time.
func (a Answer) DPSBody(trackingID string, now time.Time) DPSErrorBody {
	return DPSErrorBody{ErrorCode: a.DPSErrorCode, TrackingID: trackingID, Message: a.Message,
		Info: map[string]string{"reason": string(a.Reason)}, TimestampUTC: now.UTC().Format("2006-01-02T15:04:05.0000000Z")}
}
