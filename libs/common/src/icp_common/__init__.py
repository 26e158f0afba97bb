"""icp_common"""
