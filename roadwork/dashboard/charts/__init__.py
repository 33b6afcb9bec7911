"""Pure Plotly figure builders, one module per page of `views/` (same name): plain data in, `go.Figure` out (no
Streamlit, no database). Colours and the shared layout are in `layout`."""
