"""icp_stack"""
