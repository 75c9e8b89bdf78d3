"""Opportunity service: leads, the sales funnel, needs and complaints."""
