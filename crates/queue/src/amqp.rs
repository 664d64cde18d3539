//! RabbitMQ as a source for the plain worker.
