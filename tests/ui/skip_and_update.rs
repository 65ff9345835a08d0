use wyrmhole::Model;

#[derive(Model)]
struct TodoItem {
    id: i32,
    #[wyrm(skip, update)]
    created_by: i32,
}

fn main() {}
