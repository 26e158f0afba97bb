"""icp_notifications"""
