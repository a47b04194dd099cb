"""Finance deliverables: shared-cost allocation, the FOCUS export and the monthly report."""
