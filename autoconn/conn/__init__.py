"""conn"""
