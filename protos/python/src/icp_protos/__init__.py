"""icp_protos"""
