"""The data contract: profiles computed in the warehouse, and the gates judged from them."""
