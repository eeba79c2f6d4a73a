"""Certificates and credentials: mesh CAs and workload certificates, dataplane tokens, the xDS server certificate."""
