"""icp_gateway"""
