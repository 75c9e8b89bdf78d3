"""Contact-log service: contacts with customers, activities and managers' task lists."""
