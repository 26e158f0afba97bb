"""icp_agent"""
