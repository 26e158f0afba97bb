"""icp_identity"""
