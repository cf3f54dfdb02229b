"""What is asked of a backend: suites, datasets and scenario plans (never how it is measured)."""
