"""icp_pipelines"""
