use wyrmhole::Model;

#[derive(Model)]
struct TodoItem;

fn main() {}
