//! SQS as a source for the plain worker (and for the local event-source poller).
