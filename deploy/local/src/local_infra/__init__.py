"""Genuine Kafka, MongoDB and PostgreSQL on loopback, started and stopped by the project."""
