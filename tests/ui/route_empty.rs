use wyrmhole::Model;

#[derive(Model)]
#[wyrm(route = "")]
struct TodoItem {
    id: i32,
}

fn main() {}
